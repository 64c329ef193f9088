"""aktool report: campaign reports and hourly account statistics, for operators."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from altcraft.cliutil import CONFIG_OPTION, EXIT_FAILED, fail, load_config, print_json

app = typer.Typer(help="Campaign reports and hourly account statistics.", no_args_is_help=True)
EXIT_USAGE = 2


def _both(value: dict) -> str:
    return f"{value['human']:,} human / {value['all']:,} all"


@app.command("campaign")
def campaign(
    account: int = typer.Option(..., "--account", min=1, help="Account id."),
    campaign_id: int = typer.Option(..., "--campaign", min=1, help="Campaign id."),
    as_json: bool = typer.Option(False, "--json", help="JSON output for machines."),
    config: Optional[Path] = CONFIG_OPTION,
) -> None:
    """Sent, delivered, bounces, opens and clicks (unique/total, human/all), unsubscribes,
    complaints, clicks per link and the hourly timeline of one campaign."""
    from altcraft.domain.reports import Reports
    from altcraft.stores.analytics import Analytics

    conf, _ = load_config(config, code=EXIT_USAGE, quiet=True)
    store = Analytics(conf.CLICKHOUSE_SYSTEM)
    try:
        report = Reports(store).campaign(account, campaign_id)
    except Exception as exc:
        raise fail(f"aktool: report failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}",
                   EXIT_FAILED) from None
    finally:
        store.close()
    if as_json:
        print_json(report)
        return
    echo = typer.echo
    echo(f"campaign {campaign_id} of account {account}")
    echo(f"  sent          {report['sent']:,}")
    echo(f"  delivered     {report['delivered']:,}   deferred {report['deferred']:,}   "
         f"dropped {report['dropped']:,}")
    echo(f"  bounced       hard {report['bounced']['hard']:,}   soft {report['bounced']['soft']:,}")
    for name in ("opened", "clicked"):
        echo(f"  {name:<13} unique {_both(report[name]['unique'])}; total {_both(report[name]['total'])}")
    echo(f"  unsubscribed  {report['unsubscribed']:,}   resubscribed {report['resubscribed']:,}")
    echo(f"  complaints    {report['complaints']}   ({report['notes'][0]})")
    if report["links"]:
        echo("  links:")
        for link in report["links"]:
            echo(f"    #{link['link_id']:<4} unique {_both(link['clicks']['unique'])}; "
                 f"total {_both(link['clicks']['total'])}  {link['url']}")
    if report["timeline"]:
        echo("  hours (UTC):")
        for slot in report["timeline"]:
            kinds = ", ".join(f"{k} {v['all']}" + (f" ({v['human']} human)" if v["human"] != v["all"] else "")
                              for k, v in slot.items() if k != "hour")
            echo(f"    {slot['hour']}  {kinds}")


@app.command("hourly")
def hourly(
    account: int = typer.Option(..., "--account", min=1, help="Account id."),
    hours: int = typer.Option(24, "--hours", min=1, max=24 * 62, help="The last N hours (UTC)."),
    as_json: bool = typer.Option(False, "--json", help="JSON output for machines."),
    config: Optional[Path] = CONFIG_OPTION,
) -> None:
    """Hourly account statistics from the SSDB stats store (written by procactions)."""
    from altcraft.domain.reports import HourlyStats
    from altcraft.stores import kv

    conf, _ = load_config(config, code=EXIT_USAGE, quiet=True)
    store = kv.ssdb(conf, "stats")
    until = int(time.time()) // 3600 * 3600 + 3600
    try:
        rows = HourlyStats(store).get(account, until - hours * 3600, until)
    except Exception as exc:
        raise fail(f"aktool: statistics unavailable: {type(exc).__name__}", EXIT_FAILED) from None
    finally:
        store.close()
    if as_json:
        print_json(rows)
        return
    if not rows:
        typer.echo(f"no statistics for account {account} in the last {hours} hour(s)")
    for row in rows:
        kinds = ", ".join(f"{k} {v['all']}" + (f" ({v['human']} human)" if v["human"] != v["all"] else "")
                          for k, v in row.items() if k != "hour")
        typer.echo(f"{row['hour']}  {kinds}")
