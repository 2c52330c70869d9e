"""Bad config input in a real process: one line, no traceback."""

from __future__ import annotations

from helpers import run_cli


def test_bad_input_in_a_real_process_has_no_traceback():
    result = run_cli("fit", "data.n_bitz=3")
    assert result.returncode == 2
    assert result.stderr == "error: data.n_bitz: unknown key (did you mean data.n_bits?)\n"
    assert result.stdout == ""
