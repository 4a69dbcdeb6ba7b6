"""Reading and writing the sweep directory's state files, atomically and fast.

Every state file is written to a temporary file in the same folder, flushed, fsynced and
renamed over the old one, so a reader or a kill -9 never sees half a file.

Files that hsm-snake reads in bulk (``status.yaml`` of every task, ``task_mapping.yaml``)
are written in a form that is YAML *and* quick to parse: ``status.yaml`` is a block mapping
whose values are JSON scalars/flow collections (valid YAML), and ``task_mapping.yaml`` is a
JSON document (JSON is YAML). Reading them tries the fast path first and falls back to a YAML
parser when a person edited the file by hand. With libyaml, parsing 10,000 small YAML
mappings takes ~1.4 s; the JSON path takes ~10 ms.

Imported by the task runner on compute nodes: standard library and PyYAML only.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from hsm_snake.errors import RecordError

__all__ = ["RecordError"]

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates files 0600; state files get the mode a plain open() would give them.
_FILE_MODE = 0o666 & ~_current_umask()
# Files that may hold secrets (project_config.yaml: task.env values, tracker URIs): the user's only.
PRIVATE_FILE_MODE = 0o600


def write_bytes_atomic(path: Path, data: bytes, durable: bool = True, mode: int | None = None) -> None:
    """Write a temp file in the same folder and rename it over ``path``: readers, and a process
    killed at any moment, see the old file or the new one, never a part.

    ``durable`` also fsyncs the data before the rename, so that it survives a machine crash;
    that costs a disk flush (milliseconds on a busy disk), worth it for results, not for
    records that are soon replaced (a task's "running" status). ``mode``: the file's permissions
    (default: what a plain open() would give).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), _FILE_MODE if mode is None else mode)
            handle.write(data)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_text_atomic(path: Path, text: str, durable: bool = True, mode: int | None = None) -> None:
    write_bytes_atomic(path, text.encode("utf-8"), durable, mode)


def dump_yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def write_yaml(path: Path, data: Any, durable: bool = True, mode: int | None = None) -> None:
    """A human-facing YAML file (params.yaml, sweep_metadata.yaml)."""
    write_text_atomic(path, dump_yaml(data), durable, mode)


def tail(path: Path, size: int) -> str:
    """The last ``size`` bytes of a text file (a log may be huge); "" when it cannot be read."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - size))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise RecordError(f"{path}: not UTF-8 text ({exc})") from exc
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise RecordError(f"{path}: not valid YAML ({exc})") from exc


def write_record(path: Path, record: dict[str, Any], header: str = "", durable: bool = True) -> None:
    """A flat mapping as YAML whose values are JSON (status.yaml)."""
    lines = [f"# {header}"] if header else []
    for key, value in record.items():
        lines.append(f"{key}: {json.dumps(value, ensure_ascii=False)}")
    write_text_atomic(path, "\n".join(lines) + "\n", durable)


def parse_json_lines(text: str) -> dict[str, Any] | None:
    """The fast path: ``key: <JSON>`` lines as write_record writes them; None for anything else."""
    record: dict[str, Any] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition(": ")
        if not sep:
            return None
        try:
            record[key] = json.loads(value)
        except ValueError:
            return None
    return record


def parse_record(text: str) -> dict[str, Any]:
    """Parse what write_record wrote; anything else goes through a YAML parser."""
    record = parse_json_lines(text)
    if record is not None:
        return record
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise RecordError(f"not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise RecordError("not a mapping")
    return data


def read_record(path: Path) -> dict[str, Any]:
    """A record file, or RecordError; FileNotFoundError passes through."""
    return read_record_text(str(path))


def read_record_text(path: str) -> dict[str, Any]:
    """read_record for a path given as a string (no pathlib cost in bulk scans)."""
    with open(path, "rb") as handle:
        data = handle.read()
    return decode_record(path, data)


def decode_record(path: str, data: bytes) -> dict[str, Any]:
    """Parse a record file's bytes; RecordError naming ``path``."""
    try:
        return parse_record(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise RecordError(f"{path}: not UTF-8 text") from None
    except RecordError as exc:
        raise RecordError(f"{path}: {exc}") from None


def write_json_document(path: Path, data: Any, header: str) -> None:
    """A JSON document with a leading YAML comment: valid YAML, parsed at JSON speed."""
    write_text_atomic(path, f"# {header}\n" + json.dumps(data, ensure_ascii=False, indent=1) + "\n")


def read_json_document(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    body = text
    while body.startswith("#"):
        body = body.partition("\n")[2]
    try:
        return json.loads(body)
    except ValueError:
        pass
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise RecordError(f"{path}: neither JSON nor YAML ({exc})") from exc
