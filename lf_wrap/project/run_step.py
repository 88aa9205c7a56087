"""One step of a run that shells out to an engine (`train`, `export`, and any step that comes
after them): the bookkeeping they share, written once.

    step = RunStep(run, "export", command, run.export_log)
    step.start({"config_file": ...})        # prints `$ command`, manifest: status running
    outcome = step.run(env)                 # process.run_logged: the log, Ctrl-C, no orphans
    record = step.finish(outcome, {...})    # manifest: status, timings, exit code; raises
                                            # Interrupted (130/143) or ExternalError (1)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from lf_wrap.project.runs import RunFolder, now
from lf_wrap.util import console
from lf_wrap.util.errors import ExternalError, Interrupted
from lf_wrap.util.process import Outcome, run_logged, shell_line, tail


class RunStep:
    """`section` of the run folder's manifest, for one run of `command` logged to `log`."""

    def __init__(
        self,
        run: RunFolder,
        section: str,
        command: list[str],
        log: Path,
        *,
        env_changes: Mapping[str, str] | None = None,
    ) -> None:
        self.run_folder, self.section, self.command, self.log = run, section, command, log
        self.line = shell_line(command, env_changes)  # how to type it (printed and logged, never executed)
        self.started = ""

    def start(self, facts: Mapping[str, Any]) -> None:
        """Print the command and record the step as running, with what is known before it runs."""
        console.note(f"$ {self.line}")
        self.started = now()
        self.run_folder.record(
            self.section,
            {"status": "running", "started": self.started, "ended": None, "command": self.command, **facts},
        )

    def run(self, env: Mapping[str, str], *, on_poll: Callable[[], None] | None = None) -> Outcome:
        """Run the command in the run folder, appending its output to the log (under a `# when $ command` line)."""
        return run_logged(
            self.command,
            self.log,
            env=env,
            cwd=self.run_folder.root,
            on_poll=on_poll,
            header=f"# {self.started or now()} $ {self.line}\n",
        )

    def finish(
        self,
        outcome: Outcome,
        facts: Mapping[str, Any] | None = None,
        *,
        what: str,
        interrupted: str = "",
        resume: str = "",
    ) -> dict[str, Any]:
        """Record how it ended (with `facts`) and return that record; an interrupted run raises
        Interrupted (exit 130 / 143), a failed one ExternalError with the log's last lines.

        `what` names the step in messages ("training", "export"); `interrupted` adds to the
        interruption message, `resume` says how to carry on."""
        status = "interrupted" if outcome.interrupted else ("succeeded" if outcome.returncode == 0 else "failed")
        record: dict[str, Any] = {
            "status": status,
            "ended": now(),
            "duration_s": round(outcome.duration_s, 2),
            "exit_code": outcome.returncode,
            "interrupted_by": outcome.interrupted,
            **(facts or {}),
        }
        self.run_folder.record(self.section, record)
        if outcome.interrupted:
            raise Interrupted(
                f"{what} interrupted ({outcome.interrupted}){interrupted}",
                outcome.interrupted,
                hint=f"{resume}; log: {self.log}" if resume else f"log: {self.log}",
            )
        if outcome.returncode != 0:
            program = " ".join([Path(self.command[0]).name, *self.command[1:2]])  # e.g. llamafactory-cli train
            raise ExternalError(
                f"{program} failed (exit {outcome.returncode}). Last lines of {self.log}:\n" + tail(self.log, 20),
                hint=f"full log: {self.log}",
            )
        return record
