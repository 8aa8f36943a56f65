"""The LightningModule: a plain ferkit model plus loss, metrics, optimiser and schedule."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from ferkit.data.augment import BatchAugment
from ferkit.data.degrade import camera_corruptions
from ferkit.preprocessing import Preprocessing
from ferkit.training.config import TrainConfig


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """One seed per (run seed, epoch, process), different for each."""
    return (seed * 1_000_003 + epoch * 7_919 + rank) % 2**63


def distillation_loss(
    logits: torch.Tensor, targets: torch.Tensor, teacher_logits: torch.Tensor, weight: float, temperature: float,
) -> torch.Tensor:
    """Knowledge distillation (Hinton et al., 2015): (1 - weight) x cross-entropy with ``targets``
    (class indices or distributions) + weight x T^2 x KL(teacher || student) at temperature T.
    The T^2 keeps the soft term's gradients the size of the hard term's whatever T is."""
    hard = F.cross_entropy(logits, targets)
    teacher = F.softmax(teacher_logits / temperature, dim=1)
    soft = F.kl_div(F.log_softmax(logits / temperature, dim=1), teacher, reduction="batchmean") * temperature**2
    return (1 - weight) * hard + weight * soft


def mixup(x: torch.Tensor, targets: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup (Zhang et al., ICLR 2018): each face blended with another face of the batch, and its
    label distribution ``targets`` (N, C) with that face's at the same share, drawn once per batch
    from Beta(alpha, alpha) with torch's generator (seeded per epoch, so resuming repeats it)."""
    share = float(torch.distributions.Beta(alpha, alpha).sample())
    partner = torch.randperm(len(x), device=x.device)
    return share * x + (1 - share) * x[partner], share * targets + (1 - share) * targets[partner]


class FerClassifier(L.LightningModule):
    """Trains ``model`` under ``config``.

    Args:
        model: a ferkit model mapping (N, 1, 48, 48) to (N, C) logits.
        config: the run's configuration.
        class_prior: training class frequencies, used by class_balance "weights" and "logit_adjust".
        preprocessing: input normalisation (stored with the weights).
        teacher: a trained model whose outputs the student learns too (``config.teacher``); frozen.
    """

    class_weights: torch.Tensor | None  # registered buffers (None when unused)
    logit_offset: torch.Tensor | None

    def __init__(
        self,
        model: nn.Module,
        config: TrainConfig,
        class_prior: list[float],
        preprocessing: Preprocessing | None = None,
        teacher: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters({"config": config.to_dict(), "class_prior": class_prior})
        # Channels-last memory: about 25% faster convolutions on CPU, and what GPU tensor cores want.
        self.model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.config = config
        self.preprocessing = preprocessing or Preprocessing()
        # A plain attribute, not a submodule: the teacher is neither trained nor saved with the student.
        self._teacher = ([teacher.eval().requires_grad_(False).to(memory_format=torch.channels_last)]  # type: ignore[call-overload]
                         if teacher else [])
        self.augment = BatchAugment(config.augment_config, seed=config.seed)
        # L2-SP (Li et al., ICML 2018): when fine-tuning, the conv and dense weights are pulled toward
        # where they started rather than toward zero, so the new data move them only as far as it pays.
        self.l2sp_start = nn.Module()
        if config.l2sp > 0:
            for i, weight in enumerate(self._decayed()):
                self.l2sp_start.register_buffer(f"w{i}", weight.detach().clone(), persistent=False)
        prior = torch.tensor(class_prior, dtype=torch.float32)
        weights = prior.reciprocal() / prior.reciprocal().mean() if config.class_balance == "weights" else None
        self.register_buffer("class_weights", weights, persistent=False)
        # Logit adjustment (Menon et al., ICLR 2021): train on logits + tau * log(prior), predict
        # with the raw logits, so rare classes get a larger margin.
        adjust = config.logit_adjust_tau * prior.log() if config.class_balance == "logit_adjust" else None
        self.register_buffer("logit_offset", adjust, persistent=False)
        num_classes = len(class_prior)
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_balanced_acc = MulticlassAccuracy(num_classes, average="macro")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _decayed(self) -> list[nn.Parameter]:
        """The conv and dense weights: what weight decay (or L2-SP) applies to, not biases or BatchNorm."""
        return [p for p in self.model.parameters() if p.ndim > 1]

    def l2sp_penalty(self) -> torch.Tensor:
        """l2sp / 2 x the squared distance of the trained conv and dense weights from their start."""
        distance = sum((((w - s) ** 2).sum() for w, s in zip(self._decayed(), self.l2sp_start.buffers())
                        if w.requires_grad), torch.zeros(()))
        return 0.5 * self.config.l2sp * distance

    def on_train_epoch_start(self) -> None:
        # Every random draw of an epoch (augmentation, degradations, dropout, sampled labels) comes
        # from generators seeded by (seed, epoch, rank), so a run resumed from the checkpoint of
        # epoch k trains epoch k + 1 exactly as the uninterrupted run did (the data order is
        # seeded the same way, see EpochSampler).
        seed = epoch_seed(self.config.seed, self.current_epoch, self.global_rank)
        self.augment.generator.manual_seed(seed)
        torch.manual_seed(seed)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        faces, targets = batch
        x = self.preprocessing.to_unit(faces)
        if self.trainer is not None and self.trainer.training:
            x = self.augment(x)
        return self.preprocessing.normalize(x).contiguous(memory_format=torch.channels_last), targets.float()

    def _train_targets(self, targets: torch.Tensor) -> torch.Tensor:
        if self.config.label_mode == "probability":
            return torch.multinomial(targets, 1).squeeze(1)
        if self.config.label_mode == "majority":
            return targets.argmax(dim=1)
        return targets  # soft: the vote distribution itself

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, targets = batch
        train_targets = self._train_targets(targets)
        if self.config.mixup > 0:
            if train_targets.ndim == 1:  # class indices (majority or sampled votes) as distributions
                train_targets = F.one_hot(train_targets, targets.shape[1]).float()
            x, train_targets = mixup(x, train_targets, self.config.mixup)
            targets = train_targets
        logits = self(x).float()
        train_logits = logits + self.logit_offset if self.logit_offset is not None else logits
        if self._teacher:
            teacher = self._teacher[0].to(x.device)
            with torch.no_grad():
                teacher_logits = teacher(x).float()
            loss = distillation_loss(train_logits, train_targets, teacher_logits,
                                     self.config.distill_weight, self.config.distill_temperature)
        else:
            loss = F.cross_entropy(
                train_logits, train_targets, weight=self.class_weights,
                label_smoothing=self.config.label_smoothing,
            )
        if self.config.l2sp > 0:
            loss = loss + self.l2sp_penalty()
        self.train_acc(logits.argmax(dim=1), targets.argmax(dim=1))
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, sync_dist=True)
        self.log("train_acc", self.train_acc, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def on_validation_epoch_start(self) -> None:
        self._robust = torch.zeros(2, dtype=torch.float64)  # correct answers summed over 5 views, faces

    def _robust_step(self, x: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor, batch_idx: int) -> None:
        """val_robust_acc: mean accuracy over the clean faces and the four camera corruptions, so
        that a run can keep the epoch that holds up best (``--monitor val_robust_acc``)."""
        unit = x.float() * self.preprocessing.std + self.preprocessing.mean
        correct = (logits.argmax(dim=1) == labels).sum().item()
        views = camera_corruptions(unit.cpu(), seed=batch_idx)
        for corrupted in views:
            view = self.preprocessing.normalize(corrupted.to(x.device)).contiguous(memory_format=torch.channels_last)
            correct += (self(view).float().argmax(dim=1) == labels).sum().item()
        self._robust += torch.tensor([correct / (1 + len(views)), len(labels)], dtype=torch.float64)

    def on_validation_epoch_end(self) -> None:
        if self.config.monitor == "val_robust_acc" and self._robust[1] > 0:
            self.log("val_robust_acc", float(self._robust[0] / self._robust[1]), sync_dist=True)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, targets = batch
        logits = self(x).float()
        labels = targets.argmax(dim=1)
        if self.config.monitor == "val_robust_acc":
            self._robust_step(x, logits, labels, batch_idx)
        self.log("val_loss", F.cross_entropy(logits, labels), on_epoch=True, prog_bar=True, sync_dist=True)
        self.val_acc(logits, labels)
        self.val_balanced_acc(logits, labels)
        self.log("val_acc", self.val_acc, on_epoch=True, prog_bar=True)
        self.log("val_balanced_acc", self.val_balanced_acc, on_epoch=True)

    def configure_optimizers(self) -> Any:
        cfg = self.config
        # L2 on conv and dense weights only (as Keras kernel_regularizer), not on biases or BatchNorm;
        # none with L2-SP, whose pull toward the starting weights replaces it.
        decay = self._decayed()
        no_decay = [p for p in self.model.parameters() if p.ndim <= 1]
        groups = [{"params": decay, "weight_decay": 0.0 if cfg.l2sp > 0 else cfg.weight_decay},
                  {"params": no_decay, "weight_decay": 0.0}]
        optimizer: torch.optim.Optimizer
        if cfg.optimizer == "sgd":
            optimizer = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)
        else:
            optimizer = torch.optim.Adam(groups, lr=cfg.lr)
        if cfg.scheduler == "onecycle":  # lr rises to cfg.lr over the first 30% of the steps, then anneals
            steps = int(self.trainer.estimated_stepping_batches)
            one_cycle = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=max(steps, 1))
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": one_cycle, "interval": "step"}}
        if cfg.scheduler == "plateau":
            plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="min", factor=cfg.plateau_factor, patience=cfg.plateau_patience, min_lr=cfg.min_lr
            )
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": plateau, "monitor": "val_loss"}}
        warmup, total = cfg.warmup_epochs, cfg.epochs

        def cosine(epoch: int) -> float:
            if epoch < warmup:
                return (epoch + 1) / (warmup + 1)
            progress = (epoch - warmup) / max(1, total - warmup)
            return max(cfg.min_lr / cfg.lr, 0.5 * (1 + math.cos(math.pi * progress)))

        return {"optimizer": optimizer, "lr_scheduler": torch.optim.lr_scheduler.LambdaLR(optimizer, cosine)}
