"""Tests of the progress display: when bars are drawn, what they count."""

import io

from absl import logging
import pytest

from wemem_tf import progress


class _Terminal(io.StringIO):
  """A stream that says it is a terminal."""

  def isatty(self):
    return True


@pytest.fixture(autouse=True)
def _restore_display():
  yield
  progress.set_display(progress.Display.AUTO)


def _draw(display, stream, enabled=True, steps=3):
  progress.set_display(display, file=stream)
  with progress.bar(steps, "reference models", unit="model",
                    enabled=enabled) as bar:
    for _ in range(steps):
      bar.update(1)
  return stream.getvalue()


def test_auto_draws_only_on_a_terminal():
  assert _draw(progress.Display.AUTO, io.StringIO()) == ""  # a log file
  text = _draw(progress.Display.AUTO, _Terminal())
  assert "reference models" in text and "3/3" in text


def test_always_never_and_the_callers_own_switch():
  assert "3/3" in _draw(progress.Display.ALWAYS, io.StringIO())
  assert _draw(progress.Display.NEVER, _Terminal()) == ""
  assert _draw(progress.Display.ALWAYS, _Terminal(), enabled=False) == ""


def test_set_display_accepts_names_and_the_cli_boolean():
  progress.set_display("never")
  assert progress.get_display() is progress.Display.NEVER
  progress.set_display(True)
  assert progress.get_display() is progress.Display.AUTO
  progress.set_display(False)
  assert progress.get_display() is progress.Display.NEVER
  with pytest.raises(ValueError, match="one of"):
    progress.set_display("sometimes")


def test_track_yields_every_item_and_counts_them():
  stream = io.StringIO()
  progress.set_display(progress.Display.ALWAYS, file=stream)
  assert list(progress.track(range(4), "attacks", unit="attack")) == [0, 1, 2,
                                                                      3]
  assert "attacks" in stream.getvalue() and "4/4" in stream.getvalue()
  progress.set_display(progress.Display.NEVER)
  assert list(progress.track(iter("ab"), "x")) == ["a", "b"]


def test_a_resumed_stage_starts_from_its_finished_steps():
  stream = io.StringIO()
  progress.set_display(progress.Display.ALWAYS, file=stream)
  with progress.bar(5, "tuning trials", unit="trial", initial=3) as bar:
    bar.update(1)
    bar.set_postfix("best 0.6123")
  assert "4/5" in stream.getvalue()


def test_log_lines_go_above_an_open_bar_and_the_handler_is_restored():
  stream = _Terminal()
  handler = logging.get_absl_handler().python_handler
  saved = handler.stream
  handler.stream = stream
  try:
    progress.set_display(progress.Display.AUTO, file=stream)
    with progress.bar(2, "models", unit="model") as bar:
      assert bar.shown
      assert handler.stream is not stream  # routed through tqdm.write
      handler.stream.write("I1201 a log line\n")
      bar.update(1)
    assert handler.stream is stream
  finally:
    handler.stream = saved
  lines = stream.getvalue().replace("\r", "\n").splitlines()
  assert "I1201 a log line" in lines  # a line of its own, not inside a bar


def test_drawn_to_restores_the_previous_setting():
  progress.set_display(progress.Display.NEVER)
  with progress.drawn_to(io.StringIO()) as stream:
    list(progress.track([1, 2], "toy"))
  assert "2/2" in stream.getvalue()
  assert progress.get_display() is progress.Display.NEVER
