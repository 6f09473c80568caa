"""Files named by command-line flags (certificates, keys, token files), read at start-up.

A file that cannot be used stops the server before it listens, with a message that names the
flag and the file, so an operator can fix the deployment rather than discover it from failed
calls. Messages never quote a file's contents: those are keys and secrets.
"""

from __future__ import annotations

from pathlib import Path


class SettingsFileError(Exception):
    """A file named by a flag is missing, unreadable or not what that flag needs."""

    def __init__(self, flag: str, path: Path, problem: str) -> None:
        super().__init__(f"{flag} {path}: {problem}")
        self.flag = flag
        self.path = path


def read_text(flag: str, path: Path) -> str:
    """The file's text (UTF-8); raises SettingsFileError naming `flag` when it cannot be read."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SettingsFileError(flag, path, "no such file") from None
    except IsADirectoryError:
        raise SettingsFileError(flag, path, "is a directory, not a file") from None
    except PermissionError:
        raise SettingsFileError(flag, path, "permission denied") from None
    except OSError as error:
        raise SettingsFileError(flag, path, f"cannot read it ({error.strerror})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise SettingsFileError(flag, path, "is not UTF-8 text") from None
