"""``retouch-train train-lite``: train the lite model on make-dataset triplets, resumably.

    retouch-train train-lite --dataset data/triplets --run runs/lite [--config lite.yaml]
        [--online-photos DIR ...]
        [--max-minutes 100] [--epochs 30] [--export model.safetensors]

Losses (weights in :class:`TrainLiteConfig`): L1 and 1 - SSIM of the sliced output to the
target, 3D Laplacian smoothness of the grid, an out-of-gamut penalty on the unclamped output,
and LPIPS when its weights exist locally (reported, not silently skipped). The network reads a
256x256 copy; the loss is computed on a ``loss_size`` copy (slicing backward is the cost).

Resuming: running the same command again continues from the latest checkpoint in
``RUN/checkpoints/`` (the checkpoint format of every trainer, :mod:`.state`); the data order
depends only on (seed, epoch), so a resumed run sees the batches an uninterrupted one would have.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import kornia
import torch

from retouch_core.engine.psnr import psnr
from retouch_core.engine.resize import resize
from retouch_core.engine.slicing import slice_and_apply
from retouch_core.language.matcher import parse_instruction
from retouch_core.models.predictors.lite import LiteConfig, LiteRetouchModel

from ..data.dataset import TripletDataset
from ..data.degradations import DegradationConfig
from ..data.online import DegradedPhotos, EpochConcat
from .config import config_from_dict, config_to_dict, load_config
from .losses import grid_laplacian_smoothness, out_of_gamut
from .runtime import learning_rate, set_learning_rate
from .state import find_checkpoint, load_train_state, restore_global_rng, restore_optimizer, save_train_state

CHECKPOINTS = "checkpoints"  # inside the run folder


@dataclass(frozen=True)
class TrainLiteConfig:
    """Hyper-parameters of train-lite (YAML keys of the same names override them; read with
    :func:`.config.load_config`, the loader of every trainer).

    ``init_from``: a lite model file whose network and guide weights start a new run (e.g. a
    ``recipe_prior`` fine-tune of a model trained without it); ignored when the run resumes.
    Layers the file lacks (e.g. ``global_stats``) keep their initialisation, which leaves the
    file's behaviour unchanged. ``crop_zoom``: training crops are taken at a random scale up to
    this factor (several crops and scales per photo). ``online_photos``: folders of good photos
    whose auto pairs are degraded on the fly (:class:`~retouch_training.data.online.DegradedPhotos`,
    ``online_pairs`` per photo and epoch, the photos of the ``holdout_fraction`` split left out),
    with the calibrated ``as_shot`` degradations drawn with probability ``p_as_shot``, a share
    ``p_low_light`` of them calibrated on low-light photos (None: every calibration folder alike).
    ``auto_contrast``: the model's auto-mode blend with the classical auto-contrast grid, trained
    with the network so that it learns the share of the edit the classic leaves to it.
    """

    crop_size: int = 256
    loss_size: int = 128
    batch_size: int = 8
    lr: float = 5e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    epochs: int = 30
    grad_clip: float = 1.0
    w_l1: float = 1.0
    w_ssim: float = 0.2
    w_smooth: float = 0.02
    w_gamut: float = 1.0
    w_lpips: float = 0.1
    auto_instruction: float = 0.3
    subsets: tuple[str, ...] = ("auto", "style")
    checkpoint_every: int = 100
    eval_records: int = 96
    seed: int = 0
    width: int = 8
    recipe_prior: bool = False
    global_stats: bool = False
    crop_zoom: float = 1.0
    online_photos: tuple[str, ...] = ()
    online_pairs: int = 4
    holdout_fraction: float = 0.1
    as_shot: str | None = None
    p_as_shot: float = 0.5
    p_low_light: float | None = None
    init_from: str | None = None
    auto_contrast: float = 0.0

    def model_config(self) -> LiteConfig:
        return LiteConfig(width=self.width, recipe_prior=self.recipe_prior, global_stats=self.global_stats,
                          auto_contrast=self.auto_contrast)


def _lpips_or_none():
    try:
        from ..eval.metrics import MissingWeightsError, load_lpips
    except ImportError:
        return None, "lpips not installed"
    try:
        return load_lpips(), ""
    except MissingWeightsError as err:
        return None, str(err).splitlines()[0]


class PlanCache:
    """Instruction -> Plan, parsed once (the matcher costs milliseconds per call)."""

    def __init__(self):
        self._plans = {}

    def __call__(self, texts: list[str]):
        for text in texts:
            if text not in self._plans:
                self._plans[text] = parse_instruction(text)
        return [self._plans[text] for text in texts]


def losses(model: LiteRetouchModel, batch: dict, plans, config: TrainLiteConfig, lpips_model=None) -> dict[str, torch.Tensor]:
    """Every loss term for one batch, and their weighted ``total``."""
    source, target = batch["input"], batch["target"]
    grids = model.predict_grids(source, plans)
    small, small_target = _loss_copy(source, config), _loss_copy(target, config)
    raw = slice_and_apply(small, grids, model.guide, backend="grid_sample")
    out = raw.clamp(0, 1)
    terms = {
        "l1": (out - small_target).abs().mean(),
        "ssim": 1 - kornia.metrics.ssim(out, small_target, 11).mean(),
        "smooth": grid_laplacian_smoothness(grids),
        "gamut": out_of_gamut(raw, power=1),
    }
    if lpips_model is not None:
        terms["lpips"] = lpips_model(out * 2 - 1, small_target * 2 - 1).mean()
    weights = {"l1": config.w_l1, "ssim": config.w_ssim, "smooth": config.w_smooth, "gamut": config.w_gamut, "lpips": config.w_lpips}
    terms["total"] = sum(weights[k] * v for k, v in terms.items())
    return terms


def _loss_copy(images: torch.Tensor, config: TrainLiteConfig) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 3, loss_size, loss_size), area-averaged."""
    return resize(images, (config.loss_size, config.loss_size), mode="area")


def _epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100003 + epoch)).tolist()


def _batch(dataset: TripletDataset, indices: list[int]) -> dict:
    items = [dataset[i] for i in indices]
    return {"input": torch.stack([x["input"] for x in items]), "target": torch.stack([x["target"] for x in items]),
            "instruction": [x["instruction"] for x in items]}


@torch.no_grad()
def evaluate_psnr(model: LiteRetouchModel, dataset: TripletDataset, plans: PlanCache, config: TrainLiteConfig) -> float:
    """Mean PSNR (dB) of the model on the first ``eval_records`` held-out triplets at loss size."""
    model.eval()
    scores = []
    for start in range(0, min(len(dataset), config.eval_records), config.batch_size):
        batch = _batch(dataset, list(range(start, min(start + config.batch_size, len(dataset), config.eval_records))))
        grids = model.predict_grids(batch["input"], plans(batch["instruction"]))
        out = slice_and_apply(_loss_copy(batch["input"], config), grids, model.guide).clamp(0, 1)
        scores += psnr(out, _loss_copy(batch["target"], config)).clamp(max=100.0).tolist()  # cap: no inf mean
    model.train()
    return sum(scores) / max(1, len(scores))


def _datasets(dataset_root: Path | None, config: TrainLiteConfig):
    """(train, held-out) datasets: the make-dataset triplets and/or auto pairs degraded on the fly.
    Without triplets, the held-out set is one fixed degraded pair per held-out photo."""
    parts, heldout = [], None
    if dataset_root is not None:
        parts.append(TripletDataset(dataset_root, "train", size=config.crop_size, subsets=config.subsets, crop="random",
                                    auto_instruction=config.auto_instruction, seed=config.seed, zoom=config.crop_zoom))
        heldout = TripletDataset(dataset_root, "heldout", size=config.crop_size, subsets=config.subsets)
    if config.online_photos:
        degradation = DegradationConfig(as_shot=config.as_shot, p_as_shot=config.p_as_shot, p_low_light=config.p_low_light)
        parts.append(DegradedPhotos(config.online_photos, config.crop_size, degradation, config.online_pairs, "train",
                                    config.holdout_fraction, config.seed, config.crop_zoom))
        if heldout is None:
            heldout = DegradedPhotos(config.online_photos, config.crop_size, degradation, 1, "heldout",
                                     config.holdout_fraction, config.seed + 1)
    if not parts:
        raise ValueError("train-lite needs --dataset and/or online photos")
    return (parts[0] if len(parts) == 1 else EpochConcat(parts)), heldout


def train(dataset_root: Path | None, run: Path, config: TrainLiteConfig, max_minutes: float | None = None, progress=True,
          max_steps: int | None = None) -> dict:
    """Train (or resume) and return the final state (step, epoch, held-out PSNR history).

    ``max_minutes`` and ``max_steps`` (total optimizer steps, counted across resumes) stop the
    run early and resumably; running again continues where it stopped.
    """
    torch.manual_seed(config.seed)
    train_set, heldout = _datasets(dataset_root, config)
    if len(train_set) < config.batch_size:
        raise ValueError(f"{dataset_root} has {len(train_set)} training items, fewer than one batch")
    run.mkdir(parents=True, exist_ok=True)  # only once the dataset is known to be usable
    model = LiteRetouchModel(config.model_config())
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    if find_checkpoint(run / CHECKPOINTS) is None:
        state = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "history": []}
        if config.init_from:
            _, unexpected = model.load_state_dict(LiteRetouchModel.load(config.init_from).state_dict(), strict=False)
            if unexpected:
                raise ValueError(f"{config.init_from} has weights this architecture lacks: {unexpected[:5]}")
    else:
        saved = load_train_state(run / CHECKPOINTS)
        model.load_state_dict(saved.models["model"])
        restore_optimizer(optimizer, saved.optimizers["optimizer"])
        restore_global_rng(saved)
        state = saved.scalars
    # Every (re)start is recorded: a resumed run may continue with other settings (e.g. fewer epochs).
    state["config"] = config_to_dict(config)
    state.setdefault("invocations", []).append({"from_step": state["step"], "config": state["config"], "max_minutes": max_minutes})
    lpips_model, lpips_note = _lpips_or_none()
    plans = PlanCache()
    steps_per_epoch = len(train_set) // config.batch_size
    total_steps = steps_per_epoch * config.epochs
    deadline = time.monotonic() + 60 * max_minutes if max_minutes else math.inf
    step_limit = math.inf if max_steps is None else max_steps

    def should_stop() -> bool:
        return time.monotonic() >= deadline or state["step"] >= step_limit

    log = (run / "log.jsonl").open("a")
    if lpips_model is None:
        print(f"LPIPS term off: {lpips_note}")
    model.train()
    bar = _progress_bar(total_steps, state["step"], progress)
    while state["epoch"] < config.epochs and not should_stop():
        train_set.set_epoch(state["epoch"])
        order = _epoch_order(len(train_set), config.seed, state["epoch"])
        for b in range(state["batch_in_epoch"], steps_per_epoch):
            batch = _batch(train_set, order[b * config.batch_size : (b + 1) * config.batch_size])
            set_learning_rate(optimizer, learning_rate(state["step"], config.lr, config.warmup_steps, total_steps))
            terms = losses(model, batch, plans(batch["instruction"]), config, lpips_model)
            optimizer.zero_grad(set_to_none=True)
            terms["total"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            state["step"] += 1
            state["batch_in_epoch"] = b + 1
            record = {"step": state["step"], "epoch": state["epoch"], **{k: round(v.item(), 6) for k, v in terms.items()}}
            log.write(json.dumps(record) + "\n")
            bar.update(1)
            bar.set_postfix(loss=f"{record['total']:.4f}", l1=f"{record['l1']:.4f}")
            if state["step"] % config.checkpoint_every == 0:
                log.flush()
                _save_checkpoint(run, model, optimizer, state)
            if should_stop():
                break
        if state["batch_in_epoch"] >= steps_per_epoch:
            psnr = evaluate_psnr(model, heldout, plans, config) if len(heldout) else float("nan")
            state["history"].append({"epoch": state["epoch"], "step": state["step"], "heldout_psnr": round(psnr, 3)})
            print(f"epoch {state['epoch']}: held-out PSNR {psnr:.2f} dB")
            state["epoch"] += 1
            state["batch_in_epoch"] = 0
        _save_checkpoint(run, model, optimizer, state)
    log.close()
    bar.close()
    return state


def _save_checkpoint(run: Path, model: LiteRetouchModel, optimizer: torch.optim.Optimizer, state: dict) -> None:
    save_train_state(run / CHECKPOINTS, state["step"], models={"model": model.state_dict()},
                     optimizers={"optimizer": optimizer}, scalars=state, keep=1)


def _progress_bar(total: int, initial: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, desc="train-lite", dynamic_ncols=True)


def export(run: Path, out: Path, extra: dict[str, str] | None = None) -> Path:
    """Write the run's current weights as a loadable model file (config + provenance in metadata)."""
    saved = load_train_state(run / CHECKPOINTS)
    config = config_from_dict(TrainLiteConfig, saved.scalars["config"])
    model = LiteRetouchModel(config.model_config())
    model.load_state_dict(saved.models["model"])
    meta = {"train_config": json.dumps(config_to_dict(config)), "step": str(saved.step),
            "history": json.dumps(saved.scalars["history"])}
    model.save(out, {**meta, **(extra or {})})
    return out


def register(subparsers) -> None:
    parser = subparsers.add_parser("train-lite", help="train the lite (HDRNet-style) instruction-conditioned model",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, help="folder made by make-dataset (optional with --online-photos)")
    parser.add_argument("--run", type=Path, required=True, help="run folder: checkpoints, log.jsonl (resumes if present)")
    parser.add_argument("--config", type=Path, help="YAML overriding TrainLiteConfig fields")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--init-from", dest="init_from", help="start a new run from this lite model file's weights")
    parser.add_argument("--online-photos", dest="online_photos", action="append", metavar="DIR",
                        help="good photos whose auto pairs are degraded on the fly (repeatable)")
    parser.add_argument("--batch-size", type=int, dest="batch_size")
    parser.add_argument("--max-minutes", type=float, help="stop (resumably) after this long")
    parser.add_argument("--max-steps", type=int, help="stop (resumably) at this total optimizer step")
    parser.add_argument("--export", type=Path, help="write the final model file here")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(func=_run)


def _run(args) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    shortcuts = {"epochs": args.epochs, "batch_size": args.batch_size, "init_from": args.init_from,
                 "online_photos": args.online_photos}
    config = load_config(TrainLiteConfig, args.config, [f"{k}={json.dumps(v)}" for k, v in shortcuts.items() if v is not None])
    state = train(args.dataset, args.run, config, args.max_minutes, progress=not args.no_progress, max_steps=args.max_steps)
    print(f"step {state['step']}, epoch {state['epoch']}/{config.epochs}; checkpoint in {args.run}")
    if args.export:
        print(f"wrote {export(args.run, args.export, {'dataset': str(args.dataset)})}")
    return 0
