"""Time as the HTTP toolkit sees it: a small interface tests replace with a fake clock."""

import time


class Clock:
    """The real clock: wall time (for HTTP dates and reset epochs), monotonic time and sleep."""

    def time(self) -> float:
        """Seconds since the epoch."""
        return time.time()

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """Blocks the calling thread for ``seconds``."""
        if seconds > 0:
            time.sleep(seconds)


#: The clock every client uses unless given another.
SYSTEM_CLOCK = Clock()

__all__ = ["Clock", "SYSTEM_CLOCK"]
