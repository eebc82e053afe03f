"""Training safeguards: checkpoint files that are read without code and written atomically, a best checkpoint kept
apart from the resume point, one run per run folder, and a stop on a non-finite loss."""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import re
import secrets
import socket
from typing import Any

import lightning.pytorch as pl
import torch
from filelock import FileLock, Timeout
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, ProgressBar
from lightning.pytorch.plugins.io import CheckpointIO, TorchCheckpointIO
from lightning.pytorch.trainer.states import TrainerFn

from wavezoo.errors import ConfigError, TrainingDiverged
from wavezoo.lit.progress import default_progress_bar
from wavezoo.lit.quiet import QuietTrainer
from wavezoo.trust import load_tensor_file, read_checkpoint, scan_archive

# errno values of a failed write that are the user's to fix (permissions, read-only or full disk, quota).
WRITE_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT)


def write_error(path: str, err: OSError) -> ConfigError:
    """One line for a checkpoint that could not be written."""
    hint = " (the disk is full)" if err.errno in (errno.ENOSPC, errno.EDQUOT) else ""
    return ConfigError(f"cannot write checkpoint {path!r}: {err.strerror or err}{hint}; the previous file is kept")


def logger_files(trainer: pl.Trainer) -> list[str]:
    """What this process's loggers wrote before a fit was refused (Lightning creates the TensorBoard writer, hence
    its event file, before any callback's ``setup``), for :meth:`RunFolderLock.release` to remove: the event files
    whose name carries this process's host and pid, then their folder and its parents up to the logger's root, if
    nothing else is left in them."""
    found: list[str] = []
    for logger in trainer.loggers:
        folder, root = getattr(logger, "log_dir", None), getattr(logger, "root_dir", None)
        if not folder or not os.path.isdir(folder):
            continue
        pattern = f"events.out.tfevents.*.{socket.gethostname()}.{os.getpid()}.*"
        files = sorted(glob.glob(os.path.join(glob.escape(folder), pattern)))
        parents = []
        while root and os.path.abspath(folder) != os.path.abspath(root) and len(parents) < 4:
            parents.append(folder)
            folder = os.path.dirname(folder)
        found += parents[::-1] + files  # released newest first: the files, then the folders from the inside
    return found


def missing_parents(folder: str) -> list[str]:
    """The folders ``os.makedirs(folder)`` would create, outermost first."""
    missing = []
    folder = os.path.abspath(folder)
    while folder and not os.path.exists(folder):
        missing.append(folder)
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return missing[::-1]


def writer_alive(path: str, prefix: str) -> bool:
    """Whether the process whose pid names the temporary file ``path`` (``<prefix><pid>-<hex>.ckpt``) is running
    (and is not this one)."""
    found = re.match(rf"{re.escape(prefix)}(\d+)-", os.path.basename(path))
    if found is None or int(found.group(1)) == os.getpid():
        return False
    try:
        os.kill(int(found.group(1)), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO with two guarantees.

    Reading is always :func:`wavezoo.trust.read_checkpoint` (``torch.load(weights_only=True)`` after its records,
    hyper-parameters, claimed sizes and dtypes are checked), whatever the caller asks: a checkpoint cannot run code
    or allocate more than its model, and a missing, empty, truncated or corrupted file is one clear error. A file
    without a ``state_dict`` (the weights a ``ddp_spawn`` worker hands back) gets the archive checks of
    :func:`wavezoo.trust.scan_archive` (no compressed or mis-sized record) and ``weights_only`` loading.

    Writing goes to a temporary ``.tmp-*.ckpt`` file in the same folder, flushed to disk, then renamed over the
    target, so a run killed mid-write never leaves a half-written ``last.ckpt`` (the old file stays whole). The
    file is created with the process umask, like every other run file. A write that fails for want of space or
    permission is one :class:`ConfigError` line.
    """

    TEMP_PREFIX = ".tmp-"

    def load_checkpoint(self, path, map_location: Any | None = None, weights_only: bool | None = None):
        if "://" in os.fspath(path):
            return super().load_checkpoint(path, map_location, weights_only=True)
        if os.path.isfile(path) and os.path.getsize(path) > 0:
            scanned = scan_archive(path, f"checkpoint {os.fspath(path)!r}").structure
            if not (isinstance(scanned, dict) and "state_dict" in scanned):
                return load_tensor_file(path, map_location)
        return read_checkpoint(path, map_location)

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        path = os.fspath(path)
        if "://" in path:  # remote filesystems: fall back to Lightning's writer
            return super().save_checkpoint(checkpoint, path, storage_options)
        folder = os.path.dirname(path) or "."
        tmp = os.path.join(folder, f"{self.TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}.ckpt")
        try:
            os.makedirs(folder, exist_ok=True)
            handle = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # mode 0o666 & ~umask
            with os.fdopen(handle, "wb") as fh:
                torch.save(checkpoint, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException as err:
            if os.path.exists(tmp):
                os.remove(tmp)
            if isinstance(err, OSError) and err.errno in WRITE_ERRNOS:
                raise write_error(path, err) from None
            raise

    @classmethod
    def remove_orphans(cls, folder: str | os.PathLike) -> list[str]:
        """Delete the temporary files a killed write left in ``folder`` (call it while holding the folder's lock); a
        file whose writer (the pid in its name) is still running is kept."""
        found = sorted(glob.glob(os.path.join(glob.escape(os.fspath(folder)), f"{cls.TEMP_PREFIX}*.ckpt")))
        removed = [name for name in found if not writer_alive(name, cls.TEMP_PREFIX)]
        for name in removed:
            os.remove(name)
        return removed


class StopOnNonFiniteLoss(Callback):
    """Stops training with :class:`~wavezoo.errors.TrainingDiverged` when the loss is NaN or infinite; no
    checkpoint is written after that step, the best one is kept.

    On the CPU the loss is checked before every backward pass. On an accelerator reading it every step would stall
    the device (a host-device sync per step), so the first non-finite step is recorded on the device and read every
    ``check_every_n_steps`` steps (default 25) and before every checkpoint is written; training stops at that read.
    """

    def __init__(self, check_every_n_steps: int | None = None) -> None:
        self.check_every_n_steps = check_every_n_steps
        self.first_bad: torch.Tensor | None = None  # the first non-finite step (-1: none), on the loss's device

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor) -> None:
        step = torch.tensor(trainer.global_step, device=loss.device)
        if self.first_bad is None or self.first_bad.device != loss.device:
            self.first_bad = torch.full((), -1, device=loss.device)
        bad = ~torch.isfinite(loss.detach()).all() & (self.first_bad < 0)
        self.first_bad = torch.where(bad, step, self.first_bad)
        every = self.check_every_n_steps or (1 if loss.device.type == "cpu" else 25)
        if trainer.global_step % every == 0 or every == 1:
            self.check(trainer, loss)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        self.check(trainer)  # never write the weights of a diverged run

    def check(self, trainer: pl.Trainer, loss: torch.Tensor | None = None) -> None:
        """Read the record (one host-device sync) and raise if a step was non-finite on any rank."""
        if self.first_bad is None:
            return
        first = int(self.first_bad)
        local = first < 0
        finite = local
        if trainer.world_size > 1:  # every rank stops together (one rank raising alone would hang the others)
            finite = trainer.strategy.reduce_boolean_decision(local, all=True)
        if not finite:
            best = getattr(trainer.checkpoint_callback, "best_model_path", "") or "none yet"
            at_step = trainer.global_step if local else first
            if local:
                value = "non-finite on another rank"
            elif loss is not None and first == trainer.global_step:
                value = loss.item()
            else:
                value = "non-finite"
            raise TrainingDiverged(
                f"training loss became {value} at step {at_step}; training stopped "
                f"(lower the learning rate or clip gradients); best checkpoint kept: {best}"
            )


class WavezooTrainer(QuietTrainer):
    """``lightning.pytorch.Trainer`` with the zoo's safeguards always on (same arguments):

    - checkpoints are read with ``weights_only=True`` and written atomically (:class:`AtomicCheckpointIO`, unless a
      ``CheckpointIO`` plugin is given);
    - a NaN or infinite loss stops training (:class:`StopOnNonFiniteLoss`);
    - a progress bar counting steps when progress bars are on and none is given (plain lines when stdout is not a
      terminal: :func:`wavezoo.lit.progress.default_progress_bar`);
    - ``enable_checkpointing=False`` also drops ``ModelCheckpoint`` callbacks instead of failing on them;
    - Lightning's known-harmless notices are silenced where they arise (:class:`wavezoo.lit.quiet.QuietTrainer`).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs = with_safeguards(kwargs)
        super().__init__(*args, **kwargs)


def check_gradient_clip_val(value: Any) -> None:
    """``gradient_clip_val``: ``None`` or a finite number >= 0 (0: no clipping); Lightning takes a negative one."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
        raise ConfigError(
            f"trainer.gradient_clip_val={value!r} is invalid: expected a finite number >= 0 (0 or null: no clipping)"
        )


def with_safeguards(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The Trainer keyword arguments of :class:`WavezooTrainer`: ``kwargs`` with the safeguards added (and
    ``gradient_clip_val`` checked)."""
    check_gradient_clip_val(kwargs.get("gradient_clip_val"))
    callbacks = kwargs.get("callbacks") or []
    callbacks = list(callbacks) if isinstance(callbacks, (list, tuple)) else [callbacks]
    if kwargs.get("enable_checkpointing") is False:
        callbacks = [c for c in callbacks if not isinstance(c, ModelCheckpoint)]
    if kwargs.get("enable_progress_bar", True) is not False and not any(isinstance(c, ProgressBar) for c in callbacks):
        callbacks.append(default_progress_bar())
    if not any(isinstance(c, StopOnNonFiniteLoss) for c in callbacks):
        callbacks.append(StopOnNonFiniteLoss())
    plugins = kwargs.get("plugins") or []
    plugins = list(plugins) if isinstance(plugins, (list, tuple)) else [plugins]
    if not any(isinstance(p, CheckpointIO) for p in plugins):
        plugins.append(AtomicCheckpointIO())
    return {**kwargs, "callbacks": callbacks, "plugins": plugins}


def quiet_trainer(**kwargs: Any) -> WavezooTrainer:
    """A :class:`WavezooTrainer` for scripted runs (evaluation, sweeps): no logger, progress bar or model summary;
    ``kwargs`` add to or override these settings."""
    settings = {"logger": False, "enable_progress_bar": False, "enable_model_summary": False}
    return WavezooTrainer(**(settings | kwargs))


class RunCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that keeps the two jobs of a run's checkpoints apart.

    - The best checkpoint(s) by the monitored metric (``best-step{step}.ckpt``, ``save_top_k`` of them) are chosen
      only at the end of a validation, with that validation's metric: a file is never labelled with a stale score.
    - ``last.ckpt`` (``save_last``) is the resume point: it is rewritten every ``every_n_train_steps`` training steps
      from the start (also before the first validation), at the end of every validation (after the best one, so it
      records the best known so far) and at the end of training. A killed run resumed with ``--ckpt_path last``
      loses at most ``every_n_train_steps`` steps (one validation interval when it is not set).

    At the start of a fit the temporary ``.tmp-*.ckpt`` files of writes cut short by a kill are deleted.
    """

    def __init__(self, *args: Any, every_n_train_steps: int | None = None, save_last: bool = True, **kwargs: Any):
        kwargs["save_on_train_epoch_end"] = False  # choose the best at validation end, with that validation's metric
        super().__init__(*args, save_last=False, **kwargs)
        if every_n_train_steps is not None and (isinstance(every_n_train_steps, bool) or every_n_train_steps < 0):
            raise ConfigError(f"every_n_train_steps={every_n_train_steps!r} is invalid: expected an integer >= 0")
        self.last_every_n_steps = every_n_train_steps or 0
        self.keep_last = bool(save_last)
        self.last_written_step: int | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if stage == TrainerFn.FITTING and trainer.is_global_zero and self.dirpath and os.path.isdir(self.dirpath):
            AtomicCheckpointIO.remove_orphans(self.dirpath)

    def write_last(self, trainer: pl.Trainer) -> None:
        """Write ``last.ckpt`` for the current step (once per step; only while fitting)."""
        fitting = trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking and not trainer.fast_dev_run
        if not (self.keep_last and fitting) or self.last_written_step == trainer.global_step:
            return
        self.last_model_path = os.path.join(self.dirpath, self.CHECKPOINT_NAME_LAST + self.FILE_EXTENSION)
        trainer.save_checkpoint(self.last_model_path, self.save_weights_only)
        self.last_written_step = trainer.global_step

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any, **kwargs) -> None:
        super().on_train_batch_end(trainer, pl_module, *args, **kwargs)
        if self.last_every_n_steps and trainer.global_step % self.last_every_n_steps == 0:
            self.write_last(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        self.write_last(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        self.write_last(trainer)


class RunFolderLock(Callback):
    """One training run per output folder: ``fit`` takes an OS file lock, ``.wavezoo.lock``, in the log folder
    (``trainer.log_dir``) and in every checkpoint folder given apart from it (``--checkpoint.dirpath``), for its whole
    duration (rank 0), so a second run started into either folder is refused with one line, before it writes
    anything, instead of mixing its checkpoints and logs with the first. The OS drops the locks when the process
    ends, even when it is killed, so a killed run leaves no stale lock. Put it first in the callbacks: it runs before
    anything writes to the folders."""

    LOCK_NAME = ".wavezoo.lock"

    def __init__(self) -> None:
        self.locks: list[FileLock] = []

    @staticmethod
    def folders(trainer: pl.Trainer) -> list[str]:
        """The output folders of a fit: its log folder and the checkpoint folders set apart from it."""
        found = [trainer.log_dir] + [cb.dirpath for cb in trainer.checkpoint_callbacks if cb.dirpath]
        unique: list[str] = []
        for folder in found:
            if folder is not None and os.path.realpath(folder) not in map(os.path.realpath, unique):
                unique.append(os.fspath(folder))
        return unique

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != TrainerFn.FITTING:
            return
        folders = self.folders(trainer)  # every rank asks: log_dir is broadcast from rank 0
        if not trainer.is_global_zero:
            return
        created: list[str] = []  # what this fit made, undone if it is refused
        for folder in sorted(folders, key=lambda f: not os.path.isdir(f)):  # a busy folder exists: try those first
            path = os.path.join(folder, self.LOCK_NAME)
            lock = FileLock(path)
            try:
                created += missing_parents(folder)
                os.makedirs(folder, exist_ok=True)
                if not os.path.exists(path):
                    created.append(path)
                lock.acquire(timeout=0)
            except Timeout:
                self.release(undo=logger_files(trainer) + created)  # undone from the end
                raise ConfigError(
                    f"run folder {folder!r} is in use by another running wavezoo fit (lock file {lock.lock_file}); "
                    "wait for it to end or start this run elsewhere (--trainer.logger.init_args.version, "
                    "--trainer.default_root_dir, --checkpoint.dirpath)"
                ) from None
            except BaseException:
                self.release(undo=created)
                raise
            self.locks.append(lock)

    @property
    def lock(self) -> FileLock | None:
        """The lock of the log folder (the first taken), while held."""
        return self.locks[0] if self.locks else None

    def release(self, undo: list[str] = ()) -> None:
        """Release the locks held; ``undo``: files and empty folders this fit created, removed (newest first)."""
        while self.locks:
            self.locks.pop().release()
        for path in reversed(undo):
            with contextlib.suppress(OSError):
                os.rmdir(path) if os.path.isdir(path) else os.remove(path)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.release()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self.release()

    def state_dict(self) -> dict[str, Any]:
        return {}
