"""The GPU run's summary in Markdown (``gpu_run.md``): a model-card section for the GPU-trained model, then the
device, the checks, the CUDA tests and the throughput, each from the results dict, each stage's status first.
What a stage did not measure is said, not left out."""

from __future__ import annotations

import math
from typing import Any


def _num(v: Any, fmt: str = ".2f") -> str:
    return format(v, fmt) if isinstance(v, (int, float)) and math.isfinite(v) else "–"


def _status(res: dict[str, Any]) -> list[str]:
    rows = ["| stage | status | seconds | note |", "|---|---|---|---|"]
    for name, st in res["stages"].items():
        note = (st.get("error") or st.get("why") or st.get("stopped") or "").replace("|", "/").replace("\n", " ")
        rows.append(f"| {name} | {st['status']} | {_num(st.get('seconds'), '.1f')} | {note[:160]} |")
    return rows


def _card(tr: dict[str, Any], fid: dict[str, Any] | None) -> list[str]:
    tc = tr.get("train_config", {})
    lines = [f"**Training.** {tr['steps']} steps at batch {tc.get('batch_size')} (lr {tc.get('lr')}, warmup "
             f"{tc.get('warmup')}, EMA {tc.get('ema_decay')}), {tr['params']:,} parameters, {tr['wall_time_s']} s in "
             f"the loop on {tr['device']}; final loss {_num(tr['final_loss'], '.4f')}; "
             + ("the cosine schedule ran to its end." if tr.get("completed") else
                "**stopped by the time budget before its last step**: the learning rate had not decayed fully."),
             f"Command (the same run in one go): `{tr.get('command', '–')}`", ""]
    if not fid:
        return lines + ["FID: not measured (see the stages above).", ""]
    s, m = fid["summary"], fid["models"]
    lines += [f"**Quality.** The course's classifier FID against the test set, DDIM S = {fid['steps']}, η = 0, "
              f"n = {fid['n']} per seed, seeds {', '.join(map(str, fid['seeds']))}, the same x_T for both models:", "",
              "| model | params | train steps × batch | trained on | FID per seed | mean ± sd |",
              "|---|---|---|---|---|---|"]
    for name in ("gpu", "shipped"):
        per = ", ".join(_num(v) for v in fid["fid"][name])
        lines.append(f"| {name} | {m[name]['params']:,} | {m[name]['train_steps']} × {m[name]['batch_size']} | "
                     f"{m[name]['device']} | {per} | {_num(s[name]['mean'])} ± {_num(s[name]['sd'])} |")
    d = s["gpu_minus_shipped"]
    verdict = ("lower in every seed" if fid["gpu_lower_in_every_seed"] else "not lower in every seed")
    lines += ["", f"GPU − shipped, paired by seed: {_num(d['mean'])} ± {_num(d['sd'])} ({verdict}); "
              f"equal size: {'yes' if fid['equal_size'] else 'no'}"
              + (f"; real-data floor at n = {fid['n']}: {_num(fid['floor'])}" if "floor" in fid else "") + ".", ""]
    return lines


def _measures(res: dict[str, Any]) -> list[str]:
    st, lines = res["stages"], []
    env = st.get("env", {})
    if env.get("status") in ("ok", "failed") and "checks" in env:
        lines += [f"**Device.** {env.get('name')}, {env.get('memory_gib', '–')} GiB, capability "
                  f"{env.get('capability', '–')}; torch {env['torch']}, CUDA {env.get('cuda', '–')}, cuDNN "
                  f"{env.get('cudnn', '–')}, Python {env['python']}.", "",
                  "| check | works | max relative difference to fp32 | note |", "|---|---|---|---|"]
        for name, c in env["checks"].items():
            note = (f"backend {c['backend']}, first call {c['first_call_s']} s, then {c['second_call_ms']} ms"
                    if name == "compile" else c.get("dtype", ""))
            lines.append(f"| {name} | {'yes' if c['works'] else '**no**'} | {_num(c['rel_diff'], '.1e')} | {note} |")
        lines.append("")
    tests = st.get("cuda_tests", {})
    if "summary" in tests:
        lines += [f"**CUDA tests** (`{tests['command']}`): {tests['summary']}.", ""]
    tp = st.get("throughput", {})
    if tp.get("rows"):
        lines += [f"**Sampling throughput**, DDIM S = {tp['steps']}, 28×28, {tp['model']} ({tp['stopped']}):", "",
                  "| batch | dtype | images/s | peak GiB |", "|---|---|---|---|"]
        lines += [f"| {r['batch']} | {r['dtype']} | {r['images_per_s']:,.0f} | {_num(r['peak_gib'], '.2f')} |"
                  for r in tp["rows"]]
        lines += ["", f"Sampler overhead (ddim_sample / the same {tp['overhead']['steps']} bare model calls, median of "
                  "interleaved rounds):", "", "| batch | ratio | one model call, ms |", "|---|---|---|"]
        lines += [f"| {b} | {_num(r['median'], '.3f')} | {_num(r['model_call_ms'], '.3f')} |"
                  for b, r in tp["overhead"]["by_batch"].items()]
        lines.append("")
    return lines


def markdown(res: dict[str, Any]) -> str:
    """The Markdown of a GPU run's results (what ``save_results`` writes beside the JSON)."""
    tr, fid = res["stages"].get("train", {}), res["stages"].get("fid", {})
    where = res["stages"].get("env", {}).get("name") or (res.get("machine") or {}).get("processor", "?")
    head = [f"## fashion-mnist retrained by `ddim-lesson gpu-run` on {where} ({res.get('started', '?')})", "",
            f"Git commit `{res.get('git_commit')}`; budget {res['config']['budget_s']:.0f} s, used "
            f"{res.get('elapsed_s', '–')} s" + ("; **smoke run: tiny sizes on the CPU, not a result**"
                                                 if res["config"].get("smoke") else "") + ".", ""]
    body = _card(tr, fid if fid.get("status") == "ok" else None) if tr.get("status") == "ok" else [
        "Training: did not finish (see the stages below).", ""]
    return "\n".join(head + body + _status(res) + [""] + _measures(res)) + "\n"
