"""One progress display (tqdm) for every long stage.

The long stages of a study — memorization models, victim/shadow/reference
model trainings, attack-model training, the attacks of a configuration,
tuning trials — each open a bar with `bar(...)` (or wrap a loop with
`track(...)`): a count, a rate and an ETA on standard error.

Whether bars appear is one process-wide setting (`set_display`, the CLI's
`--progress`), like absl's verbosity:

  * `Display.AUTO` (default): only when standard error is a terminal, so
    logs, CI and batch jobs stay free of carriage returns;
  * `Display.ALWAYS`: also when it is not (e.g. a `tail -f`'d file);
  * `Display.NEVER`: never.

Nested stages nest their bars; an inner bar disappears when its stage ends.
While a bar is shown, absl log lines are written above it instead of
through it. Workers of a remote executor (Ray) run with the default, and
their standard error is not a terminal: they draw nothing; the driver's
bar counts their finished tasks.
"""

import contextlib
import enum
import sys
from typing import Any, Iterable, Iterator, Optional, TextIO, TypeVar, Union

from absl import logging

T = TypeVar("T")


class Display(enum.Enum):
  """When progress bars are drawn."""
  AUTO = "auto"
  ALWAYS = "always"
  NEVER = "never"


_settings = {"display": Display.AUTO, "file": None}


def set_display(display: Union[Display, str, bool],
                file: Optional[TextIO] = None) -> None:
  """Sets when bars are drawn (for this process) and where (default: the
  current `sys.stderr` at each bar).

  Args:
    display: a `Display`, its value ("auto", "always", "never"), or a bool
      (True: AUTO, False: NEVER; the CLI's `--[no]progress`).
    file: a stream for the bars instead of standard error (tests).
  """
  if isinstance(display, bool):
    display = Display.AUTO if display else Display.NEVER
  try:
    display = Display(display)
  except ValueError:
    raise ValueError(f"progress display must be one of "
                     f"{[d.value for d in Display]}, got {display!r}."
                     ) from None
  _settings.update(display=display, file=file)


@contextlib.contextmanager
def drawn_to(stream: TextIO) -> Iterator[TextIO]:
  """Within the block every bar is drawn to `stream`, terminal or not
  (e.g. a progress log file, or a test's `io.StringIO`); the previous
  setting returns after it."""
  saved = dict(_settings)
  set_display(Display.ALWAYS, file=stream)
  try:
    yield stream
  finally:
    _settings.update(saved)


def get_display() -> Display:
  """The current setting (`set_display`)."""
  return _settings["display"]


def _stream() -> TextIO:
  return _settings["file"] or sys.stderr


def _enabled(stream: TextIO) -> bool:
  display = _settings["display"]
  if display is Display.NEVER:
    return False
  if display is Display.ALWAYS:
    return True
  isatty = getattr(stream, "isatty", None)
  try:
    return bool(isatty and isatty())
  except ValueError:  # a closed stream
    return False


class Bar:
  """A started bar (or a silent one): `update(n)`, `set_postfix(text)`."""

  def __init__(self, tqdm_bar: Any = None):
    self._bar = tqdm_bar

  @property
  def shown(self) -> bool:
    return self._bar is not None

  def update(self, n: int = 1) -> None:
    if self._bar is not None:
      self._bar.update(n)

  def set_postfix(self, text: str) -> None:
    """Short status after the counts (e.g. "loss 0.412")."""
    if self._bar is not None:
      self._bar.set_postfix_str(text, refresh=False)


class _TqdmWriter:
  """A stream that writes absl's log lines above the open bars."""

  def __init__(self, stream: TextIO):
    self._stream = stream

  def write(self, text: str) -> None:
    from tqdm import auto as tqdm_auto  # pylint: disable=g-import-not-at-top
    tqdm_auto.tqdm.write(text.rstrip("\n"), file=self._stream)

  def flush(self) -> None:
    self._stream.flush()


@contextlib.contextmanager
def _logs_above_bars(stream: TextIO) -> Iterator[None]:
  """Routes absl's handler through `tqdm.write` while a bar is open (the
  outermost bar installs it; nested bars keep it)."""
  handler = logging.get_absl_handler().python_handler
  if isinstance(handler.stream, _TqdmWriter) or handler.stream is not stream:
    yield
    return
  handler.stream = _TqdmWriter(stream)
  try:
    yield
  finally:
    handler.stream = stream


@contextlib.contextmanager
def bar(total: Optional[int], desc: str, unit: str = "it",
        initial: int = 0, enabled: bool = True) -> Iterator[Bar]:
  """A progress bar for one stage.

  Args:
    total: the number of steps (None: unknown; no ETA).
    desc: what is counted ("reference models", "attacks", ...).
    unit: the step's unit ("model", "epoch", "trial").
    initial: steps already done (a resumed stage).
    enabled: False: silent whatever the display setting (a caller's own
      switch, e.g. `progress=False`).

  Yields:
    a `Bar`; silent when the display setting or `enabled` says so.
  """
  stream = _stream()
  if not enabled or not _enabled(stream):
    yield Bar()
    return
  from tqdm import auto as tqdm_auto  # pylint: disable=g-import-not-at-top
  tqdm_bar = tqdm_auto.tqdm(total=total, desc=desc, unit=unit,
                            initial=initial, file=stream, leave=False,
                            dynamic_ncols=True, mininterval=0.5)
  try:
    with _logs_above_bars(stream):
      yield Bar(tqdm_bar)
  finally:
    tqdm_bar.refresh()  # the final count, before the bar is cleared
    tqdm_bar.close()


def track(items: Iterable[T], desc: str, unit: str = "it",
          total: Optional[int] = None, enabled: bool = True) -> Iterator[T]:
  """Yields `items`, advancing a bar (`bar`) after each one is processed."""
  if total is None and hasattr(items, "__len__"):
    total = len(items)  # pytype: disable=wrong-arg-types
  with bar(total, desc, unit, enabled=enabled) as b:
    for item in items:
      yield item
      b.update(1)
