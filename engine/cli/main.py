"""`docsync`: the group with every subcommand added. This module only assembles: the group and
the common options are in group.py, each command in its own module, and none imports this."""

from __future__ import annotations

from engine.cli import (
    config_cmd,
    documents_cmds,
    history_cmd,
    local_cmds,
    ops_cmds,
    reconcile_cmd,
    serve_cmd,
    streams_cmds,
    sync_cmds,
)
from engine.cli.group import cli

for command in (
    local_cmds.init_cmd,
    documents_cmds.put_cmd,
    documents_cmds.get_cmd,
    documents_cmds.delete_cmd,
    documents_cmds.query_cmd,
    history_cmd.history_cmd,
    sync_cmds.backfill_cmd,
    sync_cmds.listen_cmd,
    reconcile_cmd.reconcile_group,
    local_cmds.local_cmd,
    local_cmds.demo_cmd,
    serve_cmd.serve_cmd,
    streams_cmds.consume_cmd,
    streams_cmds.stats_cmd,
    ops_cmds.dlq_group,
    ops_cmds.doctor_cmd,
    config_cmd.config_cmd,
):
    cli.add_command(command)

__all__ = ["cli", "main"]


def main() -> None:
    cli(prog_name="docsync")
