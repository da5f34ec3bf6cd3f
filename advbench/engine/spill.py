"""A cell's adversarials on disk, written and read a batch at a time, so a run's memory does not grow with its
sample count.

A cell has one adversarial per sample: [n, C, H, W] float32, 600 KB a sample for an ImageNet image at 224 px,
so 1,000 samples are 600 MB per cell, and a run holds several (the carry from the smaller eps, the unbounded run
of a minimum-norm attack, the transferability matrix's sources). An :class:`AdversarialFile` keeps them in a file
instead, which the cell fills batch by batch (``a[idx] = batch``) and its readers read batch by batch
(``a[start:stop]``, ``a[idx]``): what a process holds is a batch, whatever n is.

The file is a safetensors file from its first byte (``sample_id`` [n], ``x_adv`` [n, C, H, W]), byte for byte
the file :func:`safetensors.torch.save_file` writes, so the run store takes it as the cell's adversarials by a
hard link (no copy; a copy where the link cannot be made), and a stored cell that ``--resume`` reuses is read
back through the same class. Plain reads and writes into the tensors' own buffers, not a memory map: pages of a
mapped file count towards the process's resident memory, the page cache behind a read does not.

Where no run directory is written (an in-memory run, a Ray worker, :func:`advbench.attack`), adversarials stay
tensors: every function here that takes "adversarials" takes either (``torch.Tensor`` has the same indexing).
"""

from __future__ import annotations

import json
import shutil
import struct
import tempfile
from pathlib import Path
from typing import Union

import numpy as np
import torch

from ..errors import StorageError
from ..oserrors import os_error_message

#: safetensors' dtype names (the dtypes a cell's adversarials can have).
_DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.bfloat16: "BF16"}
_FROM_NAME = {name: dtype for dtype, name in _DTYPES.items()}
_NUMPY = {torch.float32: np.float32, torch.float64: np.float64, torch.float16: np.float16}

#: Readers that go over all of a cell read this many bytes of adversarials at a time (at least one sample).
CHUNK_BYTES = 16 << 20


class AdversarialFile:
    """[n, C, H, W] adversarials in a safetensors file, indexed like a tensor a batch at a time.

    ``a[start:stop]`` and ``a[idx]`` (int64 indices, any order) read rows; ``a[idx] = values`` and
    ``a[start:stop] = values`` write them. Values are CPU tensors of the file's dtype and row shape.

    Args:
        path: the file. shape: (n, C, H, W). dtype: torch dtype of the rows. offset: byte offset of row 0.
        owned: the file is this run's scratch and :meth:`discard` deletes it (a stored cell's file is not).
    """

    def __init__(self, path: Path, shape: tuple[int, ...], dtype: torch.dtype, offset: int, *, owned: bool) -> None:
        self.path, self.shape, self.dtype, self.offset, self.owned = Path(path), tuple(shape), dtype, offset, owned
        self.row_shape = self.shape[1:]
        self.row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * torch.empty((), dtype=dtype).element_size()

    # -- making and opening -----------------------------------------------------------------------------

    @classmethod
    def create(cls, path: Path, x: torch.Tensor, sample_ids: torch.Tensor, *, fill: bool = True) -> "AdversarialFile":
        """A new file of x's shape and dtype (float16/32/64), ``sample_id`` first and every row set to x's (a
        sample nobody attacks keeps x; ``fill=False``: left at zero, for a writer that writes every row). An OS
        error (a full disk) is a :class:`~advbench.errors.StorageError`.

        Args:
            x: [n, C, H, W] clean inputs (CPU). sample_ids: int64 [n].
        """
        try:
            return cls._create(path, x, sample_ids, fill)
        except OSError as exc:
            raise _storage_error(exc, path) from exc

    @classmethod
    def _create(cls, path: Path, x: torch.Tensor, sample_ids: torch.Tensor, fill: bool) -> "AdversarialFile":
        if x.dtype not in _NUMPY:
            raise TypeError(f"adversarials of dtype {x.dtype} cannot be spilled to a file")
        n = x.shape[0]
        data = int(np.prod(x.shape[1:], dtype=np.int64)) * x.element_size() * n
        ids = 8 * n  # sample_id first, as save_file lays it out (by alignment): the same bytes as its file
        header = {
            "sample_id": {"dtype": "I64", "shape": [n], "data_offsets": [0, ids]},
            "x_adv": {"dtype": _DTYPES[x.dtype], "shape": list(x.shape), "data_offsets": [ids, ids + data]},
        }
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)  # safetensors aligns the data to 8 bytes
        out = cls(path, tuple(x.shape), x.dtype, 8 + len(raw) + ids, owned=True)
        with open(path, "wb") as f:
            f.write(struct.pack("<Q", len(raw)) + raw)
            f.write(sample_ids.to(torch.int64).contiguous().numpy().astype("<i8").tobytes())
            f.truncate(out.offset + data)
        if fill:
            for start, stop in row_chunks(out):
                out[start:stop] = x[start:stop]
        return out

    @classmethod
    def open(cls, path: Path) -> "AdversarialFile":
        """A stored cell's adversarials (a safetensors file with ``x_adv``), read-only, never deleted here; a file
        shorter than its header says (an interrupted copy) raises ``OSError``."""
        with open(path, "rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(size))
        entry = header["x_adv"]
        found = cls(path, tuple(entry["shape"]), _FROM_NAME[entry["dtype"]], 8 + size + entry["data_offsets"][0],
                    owned=False)
        if Path(path).stat().st_size < found.offset + found.shape[0] * found.row_bytes:
            raise OSError(f"{path} is shorter than its header says")
        return found

    # -- tensor-like access -------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self.shape[0]

    def chunk_rows(self) -> int:
        """Rows per read for a reader that goes over every row (:data:`CHUNK_BYTES` of them, at least one)."""
        return max(1, CHUNK_BYTES // max(1, self.row_bytes))

    def __getitem__(self, key) -> torch.Tensor:
        start, stop, idx = self._rows(key)
        if idx is None:
            return self._read(start, stop - start)
        if idx.numel() == 0:
            return torch.empty((0, *self.row_shape), dtype=self.dtype)
        order = torch.argsort(idx)
        out = torch.empty((idx.numel(), *self.row_shape), dtype=self.dtype)
        at = 0
        for row, count in _runs(idx[order].tolist()):
            out[order[at : at + count]] = self._read(row, count)
            at += count
        return out

    def __setitem__(self, key, values: torch.Tensor) -> None:
        start, stop, idx = self._rows(key)
        values = values.detach().to("cpu", self.dtype)
        if idx is None:
            self._write(start, values[: stop - start])
            return
        order = torch.argsort(idx)
        ordered, rows = values[order], idx[order].tolist()
        at = 0
        for row, count in _runs(rows):
            self._write(row, ordered[at : at + count])
            at += count

    def tensor(self) -> torch.Tensor:
        """All rows in memory [n, C, H, W] (for a caller that wants them: a Ray worker's result, a test)."""
        return self._read(0, self.shape[0])

    def discard(self) -> None:
        """Delete the file when it is this run's scratch (a stored cell's file stays)."""
        if self.owned:
            self.path.unlink(missing_ok=True)

    # -- bytes ----------------------------------------------------------------------------------------------

    def _rows(self, key) -> tuple[int, int, torch.Tensor | None]:
        n = self.shape[0]
        if isinstance(key, slice):
            start, stop, step = key.indices(n)
            if step != 1:
                raise IndexError("adversarial files are read with a step of 1")
            return start, max(start, stop), None
        idx = torch.as_tensor(key).reshape(-1)
        if idx.dtype == torch.bool:
            idx = idx.nonzero().squeeze(1)
        idx = idx.to(torch.int64)
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n):
            raise IndexError(f"row index out of range for {n} adversarials")
        return 0, 0, idx

    def _read(self, row: int, count: int) -> torch.Tensor:
        out = torch.empty((count, *self.row_shape), dtype=self.dtype)
        view = memoryview(out.numpy().reshape(-1)).cast("B")  # read straight into the tensor: no bytes copy
        done, offset = 0, self.offset + row * self.row_bytes
        with open(self.path, "rb", buffering=0) as f:
            f.seek(offset)
            while done < len(view):
                got = f.readinto(view[done:])
                if not got:
                    raise OSError(f"{self.path} is shorter than its header says (a truncated adversarials file)")
                done += got
        return out

    def _write(self, row: int, values: torch.Tensor) -> None:
        if not self.owned:
            raise PermissionError(f"{self.path} holds a stored cell's adversarials and is not written again")
        view = memoryview(values.contiguous().numpy().reshape(-1)).cast("B")  # the tensor's own bytes
        done, offset = 0, self.offset + row * self.row_bytes
        try:
            with open(self.path, "r+b", buffering=0) as f:
                f.seek(offset)
                while done < len(view):
                    done += f.write(view[done:])
        except OSError as exc:
            raise _storage_error(exc, self.path) from exc


Adversarials = Union[torch.Tensor, AdversarialFile]


def _storage_error(exc: OSError, path: Path) -> StorageError:
    """A failed spill write as the run store's one line (a full disk stops the run; finished cells are kept)."""
    line = os_error_message(exc, None, path) or f"{exc.strerror or exc} writing {path}"
    if ".spill" not in Path(path).parts:  # an in-memory run's scratch: the temporary directory filled up
        line += " (an in-memory run keeps its adversarials in the temporary directory: set TMPDIR to a larger disk)"
    return StorageError(line)


def _runs(rows: list[int]) -> list[tuple[int, int]]:
    """Sorted row numbers as (first row, count) runs of consecutive rows."""
    runs: list[tuple[int, int]] = []
    for row in rows:
        if runs and row == runs[-1][0] + runs[-1][1]:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((row, 1))
    return runs


class Spill:
    """A run's scratch directory of adversarial files, deleted with everything in it by :meth:`close`.

    Inside the run directory when there is one (``<out>/.spill``: the same file system, so the store links a
    finished cell's file instead of copying it), else in the system's temporary directory.
    """

    def __init__(self, run_dir: Path | None) -> None:
        try:
            if run_dir is not None:
                root = Path(run_dir) / ".spill"
                shutil.rmtree(root, ignore_errors=True)  # an interrupted run's leftovers (the run dir is locked)
                root.mkdir(parents=True)
                self.root = root
            else:
                self.root = Path(tempfile.mkdtemp(prefix="advbench-spill-"))
        except OSError as exc:
            raise _storage_error(exc, Path(run_dir or tempfile.gettempdir()) / ".spill") from exc
        self._count = 0

    def new(self, x: torch.Tensor, sample_ids: torch.Tensor, *, fill: bool = True) -> AdversarialFile:
        """A new file for one cell's adversarials, its rows x's (see :meth:`AdversarialFile.create`)."""
        self._count += 1
        return AdversarialFile.create(self.root / f"{self._count:06d}.safetensors", x, sample_ids, fill=fill)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def spill_or_clone(spill: Spill | None, x: torch.Tensor, sample_ids: torch.Tensor, *,
                   fill: bool = True) -> Adversarials:
    """Where a cell's adversarials go: a new file of ``spill``, or (no spill, or a dtype the file does not take:
    bfloat16) a copy of x in memory; ``fill=False`` for a writer that writes every row (no copy of x)."""
    if spill is None or x.dtype not in _NUMPY:
        return x.clone() if fill else torch.empty_like(x)
    return spill.new(x, sample_ids, fill=fill)


def materialise(adversarials: Adversarials | None) -> torch.Tensor | None:
    """The adversarials as one in-memory tensor [n, C, H, W] (a tensor is returned as it is)."""
    return adversarials.tensor() if isinstance(adversarials, AdversarialFile) else adversarials


def discard(adversarials: Adversarials | None) -> None:
    """Free scratch adversarials now (a file of this run's spill is deleted; a tensor is left to Python)."""
    if isinstance(adversarials, AdversarialFile):
        adversarials.discard()


def row_chunks(adversarials: Adversarials) -> list[tuple[int, int]]:
    """(start, stop) row ranges covering all of ``adversarials``: for a file :meth:`AdversarialFile.chunk_rows`
    rows each, for a tensor all rows at once (it is in memory already)."""
    n = adversarials.shape[0]
    size = adversarials.chunk_rows() if isinstance(adversarials, AdversarialFile) else max(n, 1)
    return [(start, min(n, start + size)) for start in range(0, n, size)]


__all__ = ["AdversarialFile", "Adversarials", "CHUNK_BYTES", "Spill", "discard", "materialise", "row_chunks",
           "spill_or_clone"]
