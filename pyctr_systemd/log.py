"""Where pyctr's warnings and errors go: stderr, or runc's --log FILE.

podman (and anything else that drives runc) passes `--log FILE --log-format
json` and reads the file back when a command fails; runc writes one JSON object
per line, {"level", "msg", "time"}. Without --log, messages go to stderr. Errors
go to both, so a caller that ignores the file still sees them. Hand-written:
the logging module would add ~5 ms of imports and a formatter class for two
lines of output.
"""

from __future__ import annotations

import os
import time

from pyctr_systemd.errors import InvalidArgument

_path = ""
_format = "text"
_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC


def configure(path: str, log_format: str) -> None:
    """As runc does, the file is made at once: one that cannot be written is the command's
    error, not a traceback at the first warning."""
    global _path, _format
    _format = log_format
    if path:
        try:
            os.close(os.open(path, _FLAGS, 0o600))
        except OSError as e:
            raise InvalidArgument(f"cannot open the log file {path}: {e.strerror}") from None
    _path = path


def _line(level: str, message: str) -> str:
    import json  # not at the top: this module is on `pyctr run`'s start path

    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if _format == "json":
        return json.dumps({"level": level, "msg": message, "time": stamp})
    return f"time={json.dumps(stamp)} level={level} msg={json.dumps(message)}"


def _append(level: str, message: str) -> None:
    fd = os.open(_path, _FLAGS, 0o600)
    try:
        os.write(fd, (_line(level, message) + "\n").encode())
    finally:
        os.close(fd)


def warning(message: str) -> None:
    if _path:
        try:
            _append("warning", message)
            return
        except OSError:
            pass  # removed or full since: stderr still takes it
    os.write(2, f"pyctr: warning: {message}\n".encode())


def error(message: str) -> None:
    """Only the file: the CLI prints the error on stderr itself."""
    if _path:
        try:
            _append("error", message)
        except OSError:
            pass  # the error at hand is the one to report
