"""The CLI's words in English and Chinese: one catalog, keyed by the English text.

`_("{n} done", n=3)` returns the text in the command's language (`--lang`, else the
locale), formatted with the keywords. The English text is the key, so a message reads
where it is used; a test parses every `_("...")` in the CLI and fails on one with no
Chinese entry here. Words that are not prose (model names, URLs, JSON keys, flags) stay
as they are in both languages.

Help texts go through the same catalog: the commands' class translates its docstring
and each option's help when it renders `--help` in Chinese.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from typing import Literal

import click

__all__ = ["ZH", "Lang", "_", "current_lang", "help_key", "lang_from_env", "translate"]

Lang = Literal["en", "zh"]
_LANG_KEY = "gemini_guard.lang"


def lang_from_env(environ: Mapping[str, str] | None = None) -> Lang:
    """The locale's language as POSIX looks it up: LC_ALL, then LC_MESSAGES, then LANG."""
    env = os.environ if environ is None else environ
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(name, "")
        if value:
            head = value.strip().lower().replace("-", "_").split("_")[0].split(".")[0]
            return "zh" if head == "zh" else "en"
    return "en"


def set_lang(ctx: click.Context, lang: str | None) -> Lang:
    """Record `--lang` for this command and the ones under it; None keeps what an outer
    `--lang` chose (`gemini-guard --lang zh batch ...`), else the locale's."""
    if lang is None:
        chosen: Lang = ctx.meta.get(_LANG_KEY) or lang_from_env()
    else:
        chosen = "zh" if lang.lower() == "zh" else "en"
    ctx.meta[_LANG_KEY] = chosen
    return chosen


def current_lang() -> Lang:
    """`--lang` of the running command, else the locale's."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None and _LANG_KEY in ctx.meta:
        lang: Lang = ctx.meta[_LANG_KEY]
        return lang
    return lang_from_env()


def translate(text: str, lang: Lang) -> str:
    if lang == "zh":
        return ZH.get(text, text)
    return text


def help_key(text: str) -> str:
    """A docstring as the catalog keys it: dedented, without its surrounding blank lines."""
    return inspect.cleandoc(text)


def _(text: str, /, **values: object) -> str:
    out = translate(text, current_lang())
    return out.format(**values) if values else out


# fmt: off
ZH: dict[str, str] = {
    # --- shared: exit codes, errors, click's own headings -------------------------------
    "Exit codes: 0 success; 1 the command ran and found a problem; 2 usage error; "
    "130 interrupted.":
        "退出码：0 成功；1 命令已运行但发现问题；2 用法错误；130 被中断。",
    "Show this message and exit.": "显示此帮助并退出。",
    "Show the version and exit.": "显示版本并退出。",
    "Language of the output: en or zh (default: from LC_ALL / LC_MESSAGES / LANG; "
    "zh for zh_*).":
        "输出语言：en 或 zh（默认取自 LC_ALL / LC_MESSAGES / LANG；zh_* 为中文）。",
    "Show the Python traceback of an error (also GEMINI_GUARD_DEBUG=1).":
        "出错时显示 Python 回溯（也可设 GEMINI_GUARD_DEBUG=1）。",
    "Print the result as JSON (one stable schema; see docs/cli.md).":
        "以 JSON 输出结果（固定结构，见 docs/cli.md）。",
    "error": "错误",
    "interrupted": "已中断",
    "{what}: {path}: {reason}. {fix}": "{what}：{path}：{reason}。{fix}",
    "cannot read": "无法读取",
    "cannot write": "无法写入",
    "cannot open": "无法打开",
    "the directory does not exist": "目录不存在",
    "it is a directory, not a file": "它是目录，不是文件",
    "permission denied": "权限不足",
    "the disk is full": "磁盘已满",
    "it is not a text file (UTF-8 TOML expected)": "它不是文本文件（应为 UTF-8 编码的 TOML）",
    "Create the directory or choose another path.": "请创建该目录或换一个路径。",
    "Give the path of a file.": "请给出文件路径。",
    "Check the file's permissions or choose another path.": "请检查文件权限或换一个路径。",
    "Free some space or choose another disk.": "请释放空间或换一块磁盘。",
    "Check the path.": "请检查路径。",
    "Give the gemini-guard.toml file.": "请给出 gemini-guard.toml 文件。",
    "Fix the setting or rerun with --debug for the traceback.":
        "请修正该设置，或加 --debug 查看回溯。",
    "the [telemetry] jsonl file": "[telemetry] jsonl 文件",
    "Fix [telemetry] jsonl in the configuration, or its permissions.":
        "请修正配置中的 [telemetry] jsonl 或其权限。",
    "Usage: ": "用法：",
    "Options": "选项",
    "Commands": "命令",
    "[default: {value}]": "[默认：{value}]",
    "[required]": "[必填]",
    # --- the group --------------------------------------------------------------------
    "Keep applications that call the Gemini API working through its errors.":
        "让调用 Gemini API 的应用在各种错误中保持可用。",
    "Shell completion: eval \"$(_GEMINI_GUARD_COMPLETE=bash_source gemini-guard)\" "
    "(zsh_source, fish_source for those shells).":
        "Shell 补全：eval \"$(_GEMINI_GUARD_COMPLETE=bash_source gemini-guard)\""
        "（zsh 用 zsh_source，fish 用 fish_source）。",

    # --- diagnose ---------------------------------------------------------------------
    "Explain a Gemini API error: what it means, whether to retry, how to fix it.\n\n"
    "SOURCE is the error text (quote it), a file holding it, or '-' for standard input;\n"
    "whole log lines and tracebacks are fine. A bare status code (e.g. 429) explains that\n"
    "code and its usual variants. Exits 0 when the error was understood, 1 when not.":
        "解释 Gemini API 错误：含义、是否该重试、如何修复。\n\n"
        "SOURCE 为错误文本（请加引号）、保存错误的文件，或 '-' 表示标准输入；整行日志和回溯均可。"
        "只给状态码（如 429）时解释该状态码及其常见变体。能识别时退出码为 0，不能时为 1。",
    "Print the quick reference table.": "打印错误速查表。",
    "Diagnose the sample errors shipped with gemini-guard.": "诊断 gemini-guard 自带的示例错误。",
    # --- doctor -----------------------------------------------------------------------
    "Check that this machine, key and project can call Gemini, and say how to fix what can't."
    "\n\n"
    "Exits 1 when a check failed (warnings do not count); the JSON's \"failed\" says how many.":
        "检查本机、密钥和项目能否调用 Gemini，并说明不能时如何修复。\n\n"
        "有检查失败时退出码为 1（警告不计）；JSON 中的 \"failed\" 给出失败项数。",
    "A model your app uses (repeatable, or a,b,c); checked against the models list and probed.":
        "应用使用的模型（可重复，或写作 a,b,c）；与模型列表核对并试调用。",
    "API base URL (default: GOOGLE_GEMINI_BASE_URL, else "
    "https://generativelanguage.googleapis.com).":
        "API 基础地址（默认取 GOOGLE_GEMINI_BASE_URL，否则为 "
        "https://generativelanguage.googleapis.com）。",
    "gemini-guard.toml (default: GEMINI_GUARD_CONFIG or ./gemini-guard.toml): "
    "its models, store, tier, base_url and key variable are checked.":
        "gemini-guard.toml（默认取 GEMINI_GUARD_CONFIG 或 ./gemini-guard.toml）："
        "检查其中的 models、store、tier、base_url 和密钥变量。",
    "The service status page to check (default: https://aistudio.google.com/status; "
    "on Vertex AI, https://status.cloud.google.com).":
        "要检查的服务状态页（默认为 https://aistudio.google.com/status；"
        "Vertex AI 为 https://status.cloud.google.com）。",
    "Check Vertex AI (credentials, project, location) instead of an API key "
    "(default: when GOOGLE_GENAI_USE_VERTEXAI is true).":
        "检查 Vertex AI（凭据、项目、位置）而非 API 密钥"
        "（默认在 GOOGLE_GENAI_USE_VERTEXAI 为 true 时启用）。",
    "Vertex AI: the Google Cloud project (default: GOOGLE_CLOUD_PROJECT).":
        "Vertex AI：Google Cloud 项目（默认取 GOOGLE_CLOUD_PROJECT）。",
    "Vertex AI: the location, global or a region (default: GOOGLE_CLOUD_LOCATION).":
        "Vertex AI：位置，global 或某个区域（默认取 GOOGLE_CLOUD_LOCATION）。",
    "State store: memory://, sqlite:///path, redis://…": "状态存储：memory://、sqlite:///path、redis://…",
    "The tier your configuration assumes; compared with the quota ids the API reports "
    "(auto: the configuration's, else none).":
        "配置所假定的层级；与 API 报告的配额 ID 比较（auto：取配置中的，否则不比较）。",
    "The stable model the isolation test calls.": "隔离测试调用的稳定模型。",
    "Seconds allowed for each network step.": "每个网络步骤允许的秒数。",
    "Do not send a request to each configured model.": "不向每个配置的模型发送试调用请求。",
    # --- serve ------------------------------------------------------------------------
    "Serve one guarded Gemini endpoint for every language and tool.\n\n"
    "Clients keep their SDK and change its base URL to this server, sending a gateway\n"
    "token as their API key; the Google keys stay here. Runs until SIGTERM or Ctrl-C,\n"
    "its normal end (exit code 0).":
        "为所有语言和工具提供一个受保护的 Gemini 端点。\n\n"
        "客户端保留原有 SDK，只把基础 URL 改为本服务器，并以网关令牌作为 API 密钥；\n"
        "Google 密钥只留在这里。运行到 SIGTERM 或 Ctrl-C 为止，这是它的正常结束（退出码 0）。",
    "The gemini-guard.toml with [[projects]] and [[gateway.tokens]].":
        "含 [[projects]] 和 [[gateway.tokens]] 的 gemini-guard.toml。",
    "Processes serving the port; they share quotas through the config's store.":
        "服务该端口的进程数；它们通过配置中的 store 共享配额。",
    "Seconds requests in flight may take to finish after SIGTERM.":
        "收到 SIGTERM 后，进行中的请求可继续完成的秒数。",
    "Event loop; auto takes uvloop when it is installed.":
        "事件循环；auto 在已安装 uvloop 时使用它。",
    "HTTP/1.1 parser; auto takes httptools when it is installed.":
        "HTTP/1.1 解析器；auto 在已安装 httptools 时使用它。",
    "--workers {n} with store = memory://: each process would keep its own quota ledger "
    "and together they would overrun it. Set store to a sqlite:/// or redis:// URL, or "
    "use one worker.":
        "--workers {n} 配合 store = memory://：每个进程各记各的配额账本，合起来会超出配额。"
        "请把 store 设为 sqlite:/// 或 redis:// URL，或只用一个 worker。",
    "gateway listening on {url}": "网关正在监听 {url}",
    "Point an SDK at it with a gateway token as the API key, e.g. "
    "GOOGLE_GEMINI_BASE_URL={url} GEMINI_API_KEY=<token>":
        "将 SDK 指向它，并以网关令牌作为 API 密钥，例如 "
        "GOOGLE_GEMINI_BASE_URL={url} GEMINI_API_KEY=<token>",
    "gateway stopped": "网关已停止",
    # --- emulate ----------------------------------------------------------------------
    "Serve a local Gemini API with real quotas, real error bodies and scripted outages.\n\n"
    "It runs until Ctrl-C, which is its normal end (exit code 0).":
        "在本地提供 Gemini API：真实的配额、真实的错误体和按剧本发生的故障。\n\n"
        "运行到按下 Ctrl-C 为止，这是它的正常结束（退出码 0）。",
    "Address to listen on.": "监听地址。",
    "0: any free port.": "0：任一空闲端口。",
    "A scenario name (see --list-scenarios) or the path of a scenario .toml file.":
        "场景名（见 --list-scenarios）或场景 .toml 文件的路径。",
    "Run the emulator's clock this many times faster (60: a minute of quota per second).":
        "模拟器时钟加速的倍数（60：每秒走完一分钟的配额）。",
    "Append one JSON line per request to this file (projects, never keys).":
        "每个请求向此文件追加一行 JSON（记录项目，从不记录密钥）。",
    "List the scenarios and exit.": "列出场景并退出。",
    "--json goes with --list-scenarios: the server prints no result":
        "--json 需与 --list-scenarios 一起使用：服务器本身不输出结果",
    "cannot listen on {host}:{port}: {why}. Choose another --port (0 picks a free one).":
        "无法监听 {host}:{port}：{why}。请换一个 --port（0 表示任选空闲端口）。",
    "scenario: {name} - {about}": "场景：{name} - {about}",
    "time scale: {x}x": "时间倍速：{x}x",
    "; request log: {path}": "；请求日志：{path}",
    "emulator stopped": "模拟器已停止",
    "Gemini API emulator listening on {url}": "Gemini API 模拟器正在监听 {url}",
    "Point the Python SDK (google-genai) at it:": "让 Python SDK（google-genai）指向它：",
    "Point the JavaScript SDK (@google/genai) at it:": "让 JavaScript SDK（@google/genai）指向它：",
    "Or, for tools that read the environment:": "或者，对读取环境变量的工具：",
    "Stats: {url}/_emulator/stats    Press Ctrl-C to stop.":
        "统计：{url}/_emulator/stats    按 Ctrl-C 停止。",
    # --- demo -------------------------------------------------------------------------
    "Replay a bad day of Gemini offline: the guide's retry loop against the Guard.":
        "离线重演 Gemini 糟糕的一天：指南中的重试循环对比 Guard。",
    "Prompts in the workload.": "工作负载中的提示数。",
    "Requests in flight.": "同时进行的请求数。",
    "Clock speed-up: emulated seconds per real second.": "时钟加速：每个真实秒对应的模拟秒数。",
    "Build the Guard from this gemini-guard.toml (chain, tier, policies, store, "
    "quota); it still talks to the emulator, with no key.":
        "按此 gemini-guard.toml 构建 Guard（模型链、层级、策略、存储、配额）；"
        "它仍然只与模拟器通信，无需密钥。",
    "lost": "丢失",
    "served": "已完成",
    "sent": "已发送",
    "emulated time": "模拟耗时",
    "minimum": "理论最短",
    "{name} took less emulated time because it gave up on {lost} prompts.":
        "{name} 的模拟耗时更短，是因为它放弃了 {lost} 个提示。",
    "--prompts and --concurrency must be >= 1": "--prompts 和 --concurrency 必须 >= 1",
    "[bold]A bad day of Gemini[/bold] (emulated, no key, no network): the free tier "
    "cut of 2025-12-06 in force, and gemini-2.5-pro answering 503 85% of the time.":
        "[bold]Gemini 糟糕的一天[/bold]（模拟，无密钥，无网络）：2025-12-06 的免费层削减已生效，"
        "gemini-2.5-pro 有 85% 的请求返回 503。",
    "{prompts} prompts, {concurrency} at a time, clock x{speed}.":
        "{prompts} 个提示，每次 {concurrency} 个，时钟 x{speed}。",
    "Same workload, same emulated day": "相同负载，同一个模拟日",
    "Guard: built from {source}.": "Guard：由 {source} 构建。",
    "Guard: pro → flash → flash-lite, batch preset, paced for the free tier.":
        "Guard：pro → flash → flash-lite，batch 预设，按免费层限速。",
    "guide: flash only (its snippet names one model); ":
        "指南：只用 flash（其代码片段只写了一个模型）；",
    "lost: prompts that got no answer; sent: requests sent; emulated time: on the "
    "emulator's clock (x{speed}); minimum: every model used at its full per-minute "
    "limit until its per-day limit is spent, faults aside.":
        "丢失：没有得到回答的提示；已发送：发出的请求数；模拟耗时：按模拟器时钟（x{speed}）计；"
        "理论最短：每个模型按每分钟上限用满、直到用完每日上限，不计故障。",
    "done in {seconds} s real time.": "实际用时 {seconds} 秒。",
    "report of the Guard's run: {path}": "Guard 这次运行的报告：{path}",
    "Serve Prometheus metrics of the run on 127.0.0.1:PORT/metrics.": (
        "在 127.0.0.1:PORT/metrics 上提供本次运行的 Prometheus 指标。"
    ),
    # --- batch ------------------------------------------------------------------------
    "Run every request of INPUT.jsonl, paced to the quota; resumable and crash-safe.\n\n"
    'Each input line: {"id": ..., "prompt": "..."} or {"id": ..., "contents": [...],\n'
    '"config": {...}, "model": "..."}. Each output line: id, ok, text, usage, model,\n'
    "attempts, and for a failure its error (category, http_status, message).\n"
    "Exits 1 when a request failed, 130 when stopped before the end (run it again to resume).":
        "按配额节奏运行 INPUT.jsonl 中的每个请求；可续跑，崩溃也不丢失。\n\n"
        '每行输入：{"id": ..., "prompt": "..."} 或 {"id": ..., "contents": [...], '
        '"config": {...}, "model": "..."}。每行输出：id、ok、text、usage、model、attempts，'
        "失败时还有 error（category、http_status、message）。\n"
        "有请求失败时退出码为 1，未跑完就停止时为 130（再次运行同一命令即可续跑）。",
    "Output JSONL (its journal and errors file go next to it).":
        "输出 JSONL（其日志文件和错误文件放在旁边）。",
    "A gemini-guard.toml (models, tier, retry, telemetry...).":
        "gemini-guard.toml（models、tier、retry、telemetry 等）。",
    "Model for requests that name none; repeat it or give a,b,c for a fallback chain.":
        "未指定模型的请求所用的模型；可重复，或写作 a,b,c 作为回退链。",
    "Quota tier to pace to (auto: the config's, else paced as free and learned from 429s).":
        "按哪个配额层级限速（auto：取配置中的，否则按免费层限速并从 429 中学习）。",
    "Requests in flight: auto (from the tier's RPM) or N.":
        "同时进行的请求数：auto（按层级的 RPM）或 N。",
    "Run again the requests that failed before.": "重新运行之前失败的请求。",
    "guard: paced requests; batch-api: the Gemini Batch API (50% cheaper, slower).":
        "guard：限速发送请求；batch-api：使用 Gemini Batch API（便宜 50%，更慢）。",
    "With --mode batch-api: a job still pending or running this long after it was "
    "submitted is cancelled, and what it did not answer runs as paced direct calls "
    "(e.g. 6h, 90m, 2d; none: wait until the job ends).":
        "配合 --mode batch-api：作业提交后超过这么久仍在等待或运行就取消，它未回答的请求"
        "改为限速的直接调用（例如 6h、90m、2d；none：一直等到作业结束）。",
    "Run against the embedded emulator (bad-day, free-tier, overload, ...; "
    "see emulate --list-scenarios).":
        "针对内置模拟器运行（bad-day、free-tier、overload 等；见 emulate --list-scenarios）。",
    "Clock speed-up (emulated seconds per real second); default 60 with --emulate.":
        "时钟加速（每个真实秒对应的模拟秒数）；使用 --emulate 时默认为 60。",
    # --- plan -------------------------------------------------------------------------
    "Estimate tokens, time to finish under the tier's limits, and cost in USD.\n\n"
    'Prices come from the shipped table unless the config has a [prices."MODEL"]\n'
    "section (input, output, cached_input: USD per 1M tokens); limits likewise from\n"
    '[quota.limits."MODEL"]. A model the table does not know, or whose limits or prices\n'
    "Google does not publish, still gets its token estimate; the plan says what it\n"
    "cannot work out and how to supply it.":
        "估算令牌数、在该层级限额下完成所需时间，以及美元成本。\n\n"
        '价格取自内置价格表，除非配置中有 [prices."MODEL"] 段'
        "（input、output、cached_input：每百万令牌的美元价格）；限额同样可由"
        '[quota.limits."MODEL"] 给出。模型表中没有的模型，或 Google 未公布限额或价格的模型，'
        "仍会得到令牌估算；计划会说明哪些无法算出，以及如何补充。",
    "Whose limits to plan with (auto: the config's tier, else free).":
        "按哪个层级的限额估算（auto：取配置中的层级，否则为 free）。",
    "The model to plan for (default: the config's first, else gemini-2.5-flash); "
    "with a,b,c only the first is planned.":
        "要估算的模型（默认取配置中的第一个，否则为 gemini-2.5-flash）；"
        "写作 a,b,c 时只估算第一个。",
    "Output tokens assumed per request (thinking included), for the cost.":
        "每个请求假定的输出令牌数（含思考），用于计算成本。",
    'A gemini-guard.toml ([prices."MODEL"], models, tier).':
        'gemini-guard.toml（[prices."MODEL"]、models、tier）。',
    # --- plan: the text report --------------------------------------------------------
    "never ({binding} is 0)": "永远无法完成（{binding} 为 0）",
    "{days} quota days (rpd binds; the day resets at midnight Pacific)":
        "{days} 个配额日（受 rpd 限制；配额日在太平洋时间午夜重置）",
    "{hours:.1f} hours ({binding} binds)": "{hours:.1f} 小时（受 {binding} 限制）",
    "{minutes:.1f} minutes ({binding} binds)": "{minutes:.1f} 分钟（受 {binding} 限制）",
    "{n} requests on {model}, tier {tier}": "{n} 个请求，模型 {model}，层级 {tier}",
    "note: {model} is not in the model table (`gemini-guard models` lists it); "
    "estimating what can be estimated without it":
        "注意：{model} 不在模型表中（`gemini-guard models` 可列出模型表）；"
        "只估算不依赖模型表的部分",
    "({n} input line(s) rejected, not counted; first: line {line}: {message})":
        "（{n} 行输入被拒绝，未计入；第一处：第 {line} 行：{message}）",
    "tokens: {input:,} input (estimated by script: about 1 per English word, 0.6 per "
    "Chinese character), {output:,} output (assumed {each} per request)":
        "令牌：输入 {input:,}（按文字估算：每个英文单词约 1 个，每个汉字约 0.6 个），"
        "输出 {output:,}（假定每个请求 {each} 个）",
    "time:   {time} at {limits}": "时间：{time}，限额 {limits}",
    "time:   unknown: no published limits for {model} on tier {tier}. The Guard "
    "paces it adaptively, learning the enforced limit from 429s; to estimate, give "
    'the limits in the config: [quota.limits."{model}"] rpm = ..., tpm = ..., '
    "rpd = ...":
        "时间：未知：{model} 在层级 {tier} 没有公布的限额。Guard 会自适应地控制速率，"
        "从 429 中学习实际限额；如需估算，请在配置中给出限额："
        '[quota.limits."{model}"] rpm = ..., tpm = ..., rpd = ...',
    "cost:   ${standard:,.4f} at standard prices, ${batch:,.4f} through the Batch "
    "API ({discount:.0%} less)  [input ${input}/1M, output ${output}/1M{source}]":
        "成本：标准价格 ${standard:,.4f}，通过 Batch API ${batch:,.4f}"
        "（便宜 {discount:.0%}）  [输入 ${input}/1M，输出 ${output}/1M{source}]",
    ", from the config": "，取自配置",
    "        prompts over 200k tokens cost more: input ${input}/1M, "
    "output ${output}/1M":
        "      超过 20 万令牌的提示价格更高：输入 ${input}/1M，输出 ${output}/1M",
    "cost:   unknown: no published price for {model}; give it in the config: "
    '[prices."{model}"] input = ..., output = ... (USD per 1M tokens)':
        "成本：未知：{model} 没有公布的价格；请在配置中给出："
        '[prices."{model}"] input = ..., output = ...（每百万令牌的美元价格）',
    "no tier finishes within a day; split the work or use the Batch API":
        "没有哪个层级能在一天内完成；请拆分任务或使用 Batch API",
    "smallest tier that finishes within a day: {tier} ({time})":
        "一天内能完成的最低层级：{tier}（{time}）",
    # --- quota ------------------------------------------------------------------------
    "Usage against limits per project and model, and the time to each reset.\n\n"
    "It reads one store and names it: the Guards and `batch` share their ledgers there\n"
    "when they are configured with the same store (store = ... or GEMINI_GUARD_STORE).":
        "按项目和模型显示用量与限额，以及距离每次重置的时间。\n\n"
        "它读取一个存储并写明是哪一个：Guard 和 `batch` 配置了同一存储"
        "（store = ... 或 GEMINI_GUARD_STORE）时，在那里共享配额账本。",
    "The quota store to read: sqlite:///path, redis://host:port/db (default: "
    "GEMINI_GUARD_STORE, else the config's store, else "
    "sqlite:///~/.cache/gemini-guard/state.db).":
        "要读取的配额存储：sqlite:///path、redis://host:port/db（默认取 GEMINI_GUARD_STORE，"
        "否则取配置中的 store，否则为 sqlite:///~/.cache/gemini-guard/state.db）。",
    "A gemini-guard.toml: its store and tier (the ones your Guards use).":
        "gemini-guard.toml：读取其中的 store 和 tier（即你的 Guard 所用的）。",
    "Whose limits to compare with (auto: the config's tier; none known up front).":
        "与哪个层级的限额比较（auto：取配置中的层级；否则事先不知道限额）。",
    "Also show what this shared response cache saved: sqlite:///path, redis://host:port/db.":
        "同时显示此共享响应缓存节省了多少：sqlite:///path、redis://host:port/db。",
    "Quota usage in {store} (limits: {tier})": "{store} 中的配额用量（限额：{tier}）",
    "no limits are known with --tier auto: pass --tier free|tier1|tier2|tier3":
        "--tier auto 时不知道限额：请传 --tier free|tier1|tier2|tier3",
    "project": "项目",
    "model": "模型",
    "requests\nper min": "每分钟\n请求",
    "tokens\nper min": "每分钟\n令牌",
    "requests\ntoday": "今日\n请求",
    "tokens\ntoday": "今日\n令牌",
    "next\nslot in": "下个名额",
    "day\nresets in": "距每日\n重置",
    "Response cache in {url}": "{url} 中的响应缓存",
    "hits": "命中",
    "misses": "未命中",
    "hit ratio": "命中率",
    "coalesced": "合并",
    "tokens saved": "节省令牌",
    "dollars saved": "节省美元",
    "context uses": "上下文缓存使用",
    "context tokens": "上下文令牌",
    "context $ saved": "上下文节省美元",
    "--store memory:// lives and dies with one process: pass the sqlite:/// or "
    "redis:// URL your Guards use":
        "--store memory:// 随单个进程存亡：请传你的 Guard 所用的 sqlite:/// 或 redis:// 地址",
    "{path} does not exist yet": "{path} 尚不存在",
    "it is empty": "它是空的",
    "No quota has been used in {store}: {where}.": "{store} 中没有配额用量：{where}。",
    "no counts yet": "尚无计数",
    "No response-cache counts in {url}: {where}.": "{url} 中没有响应缓存计数：{where}。",
    # --- batch: the summary -------------------------------------------------------------
    "{done} done, {failed} failed, {left} left of {total} requests":
        "共 {total} 个请求：{done} 个完成，{failed} 个失败，{left} 个剩余",
    " ({n} already final before this run)": "（其中 {n} 个在本次运行前已有结果）",
    "served by: {models}": "由以下模型完成：{models}",
    'failures: {why} (details in the output\'s "error" field)':
        '失败：{why}（详见输出中的 "error" 字段）',
    "{n} input line(s) rejected: see {path}": "{n} 行输入被拒绝：见 {path}",
    "output repaired from the journal: {appended} line(s) restored, "
    "{torn} torn byte(s) cut, {dropped} dropped, {adopted} adopted":
        "已按日志修复输出：恢复 {appended} 行，截去 {torn} 个残缺字节，删除 {dropped} 行，"
        "采纳 {adopted} 行",
    "output: {output}   journal: {journal}": "输出：{output}   日志：{journal}",
    "stopped; resume with the same command:": "已停止；用同一命令续跑：",
    "some requests failed; run again with --retry-failed to retry them":
        "部分请求失败；加 --retry-failed 再次运行即可重试",
    "stopping: no new requests; finishing those in flight "
    "(Ctrl-C again to abandon them; they will run on resume)":
        "正在停止：不再发出新请求，等待进行中的请求完成"
        "（再按 Ctrl-C 放弃它们；续跑时会重新运行）",
    "stopped; the Batch API job keeps running. Resume with:":
        "已停止；Batch API 作业仍在运行。续跑：",
    "emulator: {scenario} on {url}, clock x{x}": "模拟器：{scenario}，地址 {url}，时钟 x{x}",
    "{n} input line(s) rejected (first: line {line}: {why}); listed in {path}":
        "{n} 行输入被拒绝（第一处：第 {line} 行：{why}）；已列在 {path}",
    "batch: {pending} to run of {total} ({done} done, {failed} failed before); "
    "model {chain}, tier {tier}, concurrency {workers}, quota state {store}":
        "批处理：共 {total} 个，待运行 {pending} 个（此前完成 {done} 个，失败 {failed} 个）；"
        "模型 {chain}，层级 {tier}，并发 {workers}，配额状态 {store}",
    "; times below (rate, ETA) are emulated: clock x{x}":
        "；以下时间（速率、预计剩余时间）为模拟时间：时钟 x{x}",
    "memory:// (this run only)": "memory://（仅本次运行）",
    # --- batch: the progress line (gemini_guard.batch.progress.WORDING) ---------------
    "{finished}/{total}  done {done}  failed {failed}  waiting for quota {waiting}  "
    "{rate:.1f}/min  ETA {eta}{bound}":
        "{finished}/{total}  完成 {done}  失败 {failed}  等待配额 {waiting}  "
        "{rate:.1f}/分钟  预计剩余 {eta}{bound}",
    "[green]done {done}[/]  [red]failed {failed}[/]  [yellow]waiting {waiting}[/]  "
    "{rate:.1f}/min  ETA {eta}{bound}":
        "[green]完成 {done}[/]  [red]失败 {failed}[/]  [yellow]等待 {waiting}[/]  "
        "{rate:.1f}/分钟  预计剩余 {eta}{bound}",
    " ({binding}-bound)": "（受 {binding} 限制）",
    # --- diagnose: the caller's recent rate -------------------------------------------
    "Requests your project sent to the model in the minute before the error: "
    "a bare 429 far below --limit is explained as what it is (not your quota).":
        "出错前一分钟内你的项目向该模型发送的请求数：远低于 --limit 的无详情 429 "
        "会按其真实情况解释（不是你的配额）。",
    "The model's RPM limit for --rate.": "与 --rate 对应的该模型每分钟请求限额（RPM）。",
    "Your tier, named in that explanation.": "你的层级，会写进该解释中。",
    # --- models -------------------------------------------------------------------------
    "Show the model table: token limits, prices, rate limits, when they were checked.\n\n"
    "The key for --refresh comes from GOOGLE_API_KEY or GEMINI_API_KEY (as google-genai\n"
    "reads it); models.list costs no generation quota.":
        "显示模型表：令牌上限、价格、速率限额，以及核对日期。\n\n"
        "--refresh 使用的密钥取自 GOOGLE_API_KEY 或 GEMINI_API_KEY"
        "（与 google-genai 的读取方式相同）；"
        "models.list 不消耗生成配额。",
    "Ask the API's models.list and write its token limits and methods to the local table.":
        "调用 API 的 models.list，把其中的令牌上限和支持的方法写入本地模型表。",
    "Where --refresh writes (default: GEMINI_GUARD_MODEL_TABLE, else "
    "~/.config/gemini-guard/models.toml).":
        "--refresh 写入的位置（默认取 GEMINI_GUARD_MODEL_TABLE，否则为 "
        "~/.config/gemini-guard/models.toml）。",
    "API base URL for --refresh (default: GOOGLE_GEMINI_BASE_URL, else "
    "https://generativelanguage.googleapis.com).":
        "--refresh 使用的 API 基础地址（默认取 GOOGLE_GEMINI_BASE_URL，否则为 "
        "https://generativelanguage.googleapis.com）。",
    "Seconds allowed for each models.list request.": "每次 models.list 请求允许的秒数。",
    "Print the table as JSON.": "以 JSON 输出模型表。",
    # --- models: the table ------------------------------------------------------------
    "Gemini models (USD per 1M tokens; Batch API: 50% less)":
        "Gemini 模型（每百万令牌的美元价格；Batch API 便宜 50%）",
    "input": "输入",
    "output": "输出",
    "price in / out": "价格 入 / 出",
    "free": "免费",
    "tier 1": "层级 1",
    "checked": "核对日期",
    "* token limits from the local table (models.list)": "* 令牌上限取自本地模型表（models.list）",
    "-: not published. A model not listed works too: the Guard learns its limits "
    "from 429s, and `plan` says what it cannot estimate.":
        "-：未公布。未列出的模型同样可用：Guard 会从 429 中学习其限额，"
        "`plan` 会说明哪些无法估算。",
    # --- report -------------------------------------------------------------------------
    "Turn a JSONL events file (JsonlSink, [telemetry] jsonl) into a report.":
        "把 JSONL 事件文件（JsonlSink、[telemetry] jsonl）生成报告。",
    "Where to write the HTML page (default: EVENTS with .html).":
        "HTML 页面的写入位置（默认：EVENTS 改为 .html 后缀）。",
    "html: a self-contained page; text: the summary, printed.":
        "html：自包含的页面；text：在终端打印摘要。",
    "Also draw this tier's per-minute limits from the model table.":
        "同时画出模型表中该层级的每分钟限额。",
    # --- models: --refresh ------------------------------------------------------------
    "no limit": "无限额",
    "--refresh needs an API key: set GEMINI_API_KEY (or GOOGLE_API_KEY)":
        "--refresh 需要 API 密钥：请设置 GEMINI_API_KEY（或 GOOGLE_API_KEY）",
    "models.list failed: {why}": "models.list 失败：{why}",
    "note: gemini-guard reads the local table from {path}; "
    "set GEMINI_GUARD_MODEL_TABLE={output} to use this one":
        "注意：gemini-guard 从 {path} 读取本地模型表；"
        "如要使用这个文件，请设置 GEMINI_GUARD_MODEL_TABLE={output}",
    "wrote {n} models from models.list to {path}":
        "已把 models.list 中的 {n} 个模型写入 {path}",
    # --- demo: the two contenders ------------------------------------------------------
    "guide's loop": "指南的循环",
    # --- diagnose, batch, the deprecated --speed ------------------------------------------
    "give the error to explain: as an argument (quote it), a file name, or '-' "
    "to read standard input; or use --table or --samples.":
        "请给出要解释的错误：作为参数（加引号）、文件名，或用 '-' 读取标准输入；"
        "也可以用 --table 或 --samples。",
    "cannot read {path}: {why}": "无法读取 {path}：{why}",
    "--speed is deprecated; use --time-scale (same meaning)":
        "--speed 已弃用；请用 --time-scale（含义相同）",
    "metrics: {url}": "指标：{url}",
    "unknown scenario {name!r}; the names are: {names} (or give the path of a .toml file)":
        "没有场景 {name!r}；可用的场景名：{names}（也可以给出 .toml 文件的路径）",
    # --- batch --mode batch-api (gemini_guard.batch.batch_api.WORDING) -------------------
    "batch-api: submitted {n} requests as {name}": "batch-api：已将 {n} 个请求提交为 {name}",
    "batch-api: {name} {state}": "batch-api：{name} {state}",
    "batch-api: {name} is still {state} {after} after it was submitted: cancelling it; "
    "what it did not answer runs as direct calls":
        "batch-api：{name} 提交 {after} 后仍{state}：正在取消；它未回答的请求改为直接调用",
    "batch-api: {n} requests run as direct calls": "batch-api：{n} 个请求改为直接调用",
    "pending": "等待中",
    "queued": "排队中",
    "running": "运行中",
    "succeeded": "已成功",
    "failed": "已失败",
    "cancelled": "已取消",
    "expired": "已过期",
    "{n:.1f} min": "{n:.1f} 分钟",
}
# fmt: on
