#!/usr/bin/env python3
"""tests/cli/cli_test.py: behaviour tests of `mutirao run` (one ctest test per case).

usage: cli_test.py MUTIRAO CASE      (cli_test.py MUTIRAO --list prints the case names)

Each case runs MUTIRAO with arguments over a file of tests/cli/cases/ and checks the
exit status, patterns that must (or must not) appear on stdout/stderr, the elapsed time
and, for some, extra conditions (JSON lines, a marker file never written).
"""
import json
import os
import re
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CASES_DIR = os.path.join(HERE, "cases")


def case_file(name):
    return os.path.join(CASES_DIR, name)


def check_deadlock_json(out, err):
    """The deadlock report is one JSON log record with the stacks."""
    lines = err.splitlines()
    if len(lines) != 1:
        return "%d stderr lines, expected one JSON record" % len(lines)
    try:
        o = json.loads(lines[0])
    except ValueError as e:
        return "stderr is not JSON (%s)" % e
    if (o.get("level"), o.get("event")) != ("error", "deadlock") or "deadlock" not in o.get("msg", ""):
        return "record: %r" % o
    for key in ("ts", "task", "goroutine"):
        if key not in o:
            return "record without %r: %r" % (key, o)
    if not re.search(r"goroutine \d+ \[blocked\]:\nstack traceback:\n(.*\n)*.*deadlock\.lua:10: "
                     r"in main chunk", o.get("stacks", "")) or "deadlock.lua:8:" not in o["stacks"]:
        return "stacks: %r" % o.get("stacks")
    return None


def check_json_lines(out, err):
    """Every non-empty stderr and stdout line is one JSON object."""
    records = []
    for stream, text in (("stderr", err), ("stdout", out)):
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as e:
                return "%s line is not JSON (%s): %r" % (stream, e, line)
            if not isinstance(obj, dict):
                return "%s line is not a JSON object: %r" % (stream, line)
            records.append((stream, obj))
    logs = [o for s, o in records if s == "stderr"]
    for o in logs:
        for key in ("ts", "level", "msg", "task", "goroutine"):
            if key not in o:
                return "log record without %r: %r" % (key, o)
    starts = [o for o in logs if o.get("event") == "task_start"]
    ends = [o for o in logs if o.get("event") == "task_end"]
    if [o["task"] for o in starts] != ["first", "second"]:
        return "task_start events: %r" % starts
    if [(o["task"], o["status"]) for o in ends] != [("first", "success"), ("second", "success")]:
        return "task_end events: %r" % ends
    if not all(isinstance(o.get("duration_ms"), (int, float)) for o in ends):
        return "task_end without a numeric duration_ms: %r" % ends
    user = [o for o in logs if o["msg"].startswith("hello from")]
    if not user or user[0]["task"] != "first" or not isinstance(user[0]["goroutine"], int):
        return "log.info record lacks its task context: %r" % user
    if user[0]["level"] != "info" or user[0]["msg"] != "hello from first - says hello 42":
        return "log.info record: %r" % user[0]
    summary = [o for s, o in records if s == "stdout" and o.get("event") == "summary"]
    if len(summary) != 1 or summary[0].get("ok") is not True:
        return "JSON summary on stdout: %r" % summary
    if [t["status"] for t in summary[0]["tasks"]] != ["success", "success"]:
        return "JSON summary rows: %r" % summary[0]["tasks"]
    return None


def marker_never_written(ctx):
    if os.path.exists(ctx["marker"]):
        return "the goroutine of the timed-out task wrote its file after the deadline"
    return None


def exec_group_gone(ctx):
    """The process group whose id the task wrote to the marker has no live
    (non-zombie) process left, within a generous deadline."""
    import subprocess
    try:
        with open(ctx["marker"]) as f:
            pgid = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return "the task's command never wrote its pid to the marker file"
    deadline = time.monotonic() + 5
    while True:
        ps = subprocess.run(["ps", "-eo", "pgid=,stat="], capture_output=True, text=True).stdout
        live = [l for l in ps.splitlines()
                if l.split() and int(l.split()[0]) == pgid and not l.split()[1].startswith("Z")]
        if not live:
            return None
        if time.monotonic() > deadline:
            return "process group %d survived the task's timeout: %r" % (pgid, live)
        time.sleep(0.05)


# name: dict(args, code, out=[regex], err=[regex], not_out, not_err, min_s, max_s, env, check)
CASES = {
    "exit_ok": dict(
        args=["run", case_file("ok.lua")], code=0,
        out=[r"(?m)^WORKFLOW\s+TASK\s+STATUS\s+DURATION\s+MESSAGE$",
             r"(?m)^ok\s+first\s+success\s+\S+\s+first done$",
             r"(?m)^ok\s+second\s+success\s+\S+$", r"2 tasks: 2 success"],
        err=[r"INFO  \[first g\d+\] task 'first' started: says hello",
             r"INFO  \[first g\d+\] hello from first - says hello 42",
             r"\d\d:\d\d:\d\d\.\d\d\d INFO  \[first g\d+\] task 'first' success \(\d+ms\): first done",
             r"task 'second' success"],
        not_err=[r"\x1b\["], not_out=[r"\x1b\["]),
    "exit_task_failed": dict(
        args=["run", case_file("task_error.lua")], code=1,
        out=[r"(?m)^task_error\s+fragile\s+failed\s+\S+\s+.*task_error\.lua:3: kaboom: bad input$",
             r"(?m)^task_error\s+sturdy\s+success"],
        err=[r"task 'fragile' raised an error: .*task_error\.lua:3: kaboom: bad input\n"
             r"stack traceback:\n(.*\n)*.*task_error\.lua:3: in upvalue 'explode'",
             r"ERROR \[fragile g\d+\] task 'fragile' failed"]),
    "exit_script_error": dict(
        args=["run", case_file("script_error.lua")], code=1,
        err=[r"script_error\.lua:5: script blew up\nstack traceback:",
             r"script_error\.lua:6: in main chunk",
             # reported in the context of the goroutine that ran the chunk
             r"INFO  \[(g\d+)\] main chunk here\n.*ERROR \[\1\] error: \S*script_error\.lua:5:"],
        not_out=[r"WORKFLOW"]),
    "exit_missing_file": dict(
        args=["run", "no/such/tasks.lua"], code=2,
        err=[r"\Amutirao: cannot open no/such/tasks\.lua: No such file or directory\n\Z"]),
    "exit_syntax_error": dict(
        args=["run", case_file("syntax_error.lua")], code=2,
        err=[r"\Amutirao: \S*syntax_error\.lua:2: unexpected symbol near '='\n\Z"]),
    "exit_binary_chunk": dict(
        args=["run", case_file("binary_chunk.lua")], code=2,
        err=[r"\Amutirao: \S*binary_chunk\.lua: attempt to load a binary chunk \(mode is 't'\)\n\Z"]),
    # usage errors: one line and where the help is, never the whole help
    "usage_no_command": dict(
        args=[], code=2, err=[r"\Amutirao: no command given \(see mutirao --help\)\n\Z"]),
    "usage_unknown_command": dict(
        args=["frob"], code=2, err=[r"\Amutirao: unknown command 'frob' \(see mutirao --help\)\n\Z"]),
    # mutirao dlq: usage errors need no Kafka or Redis (the fleet tests run the rest)
    "dlq_help": dict(args=["dlq", "help"], code=0, out=[r"usage: mutirao dlq list POOL \[--json\]"]),
    "dlq_usage": dict(
        args=["dlq"], code=2,
        err=[r"\Amutirao dlq: no subcommand given \(see mutirao dlq help\)\n\Z"]),
    "dlq_unknown_subcommand": dict(
        args=["dlq", "frob", "p"], code=2,
        err=[r"\Amutirao dlq: unknown subcommand 'frob' \(see mutirao dlq help\)\n\Z"]),
    "dlq_no_id": dict(
        args=["dlq", "retry", "p"], code=2, err=[r"mutirao dlq retry: no task id \(or --all\) given"]),
    "dlq_bad_pool": dict(
        args=["dlq", "list", "bad pool!"], code=2, err=[r"invalid pool name 'bad pool!'"]),
    "dlq_bad_option": dict(
        args=["dlq", "list", "p", "--all"], code=2, err=[r"unknown option '--all'"]),
    "dlq_redis_unreachable": dict(
        args=["dlq", "list", "p"], code=1, max_s=10,
        env={"MUTIRAO_REDIS_URL": "redis://127.0.0.1:1", "MUTIRAO_CONNECT_TIMEOUT_MS": "500",
             "MUTIRAO_OP_TIMEOUT_MS": "1500"},
        err=[r"mutirao dlq: redis: unreachable at 127\.0\.0\.1:1"]),
    # mutirao config: the configuration in effect, secrets never shown
    "config_secrets_hidden": dict(
        args=["config"], code=0,
        env={"MUTIRAO_KAFKA_SECURITY_PROTOCOL": "sasl_ssl", "MUTIRAO_KAFKA_SASL_USERNAME": "svc",
             "MUTIRAO_KAFKA_SASL_PASSWORD": "hunter2-k", "MUTIRAO_KAFKA_SASL_MECHANISM": "PLAIN",
             "MUTIRAO_KAFKA_PROPERTY_SSL_KEY_PASSWORD": "hunter2-p",
             "MUTIRAO_REDIS_URL": "rediss://svc:hunter2-r@r.example:6380/0"},
        out=[r"(?m)^kafka\.security_protocol = sasl_ssl  # MUTIRAO_KAFKA_SECURITY_PROTOCOL$",
             r"(?m)^kafka\.sasl_password = \*\*\*  # MUTIRAO_KAFKA_SASL_PASSWORD$",
             r"(?m)^kafka\.property\.ssl\.key\.password = \*\*\*  # "
             r"MUTIRAO_KAFKA_PROPERTY_SSL_KEY_PASSWORD$",
             r"(?m)^redis\.url = rediss://svc:\*\*\*@r\.example:6380/0  # MUTIRAO_REDIS_URL$"],
        not_out=[r"hunter2"], not_err=[r"hunter2"]),
    "config_sasl_without_password": dict(
        args=["config"], code=2,
        env={"MUTIRAO_KAFKA_SECURITY_PROTOCOL": "sasl_ssl", "MUTIRAO_KAFKA_SASL_USERNAME": "svc"},
        err=[r"mutirao: kafka.security_protocol 'sasl_ssl' needs kafka.sasl_username and "
             r"kafka.sasl_password_file"]),
    "config_bad_password_file": dict(
        args=["config"], code=2, env={"MUTIRAO_REDIS_PASSWORD_FILE": "/nonexistent/redis.pw"},
        err=[r"mutirao: redis.password_file: /nonexistent/redis.pw: No such file"]),
    "config_extra_argument": dict(
        args=["config", "x"], code=2,
        err=[r"\Amutirao: config: unexpected argument 'x' \(see mutirao --help\)\n\Z"]),
    "usage_unknown_option": dict(
        args=["run", case_file("ok.lua"), "--frobnicate"], code=2,
        err=[r"\Amutirao: unknown option '--frobnicate' \(see mutirao run --help\)\n\Z"]),
    "usage_bad_param": dict(
        args=["run", case_file("ok.lua"), "--param", "novalue"], code=2,
        err=[r"\Amutirao: --param expects KEY=VALUE, got 'novalue' \(see mutirao run --help\)\n\Z"]),
    "usage_bad_log_level": dict(
        args=["run", case_file("ok.lua"), "--log-level", "loud"], code=2,
        err=[r"\Amutirao: invalid --log-level 'loud' \(expected debug, info, warn or error\) "
             r"\(see mutirao run --help\)\n\Z"]),
    "usage_run_no_file": dict(
        args=["run"], code=2, err=[r"\Amutirao: run: no task file given \(see mutirao run --help\)\n\Z"]),
    "usage_keygen_no_out": dict(
        args=["keygen"], code=2,
        err=[r"\Amutirao: keygen: --out DIR is required \(see mutirao --help\)\n\Z"]),
    "usage_config_missing_file": dict(
        args=["--config", "/nonexistent/m.conf", "pools"], code=2,
        err=[r"\Amutirao: --config /nonexistent/m\.conf: No such file or directory\n\Z"]),
    # --config among a command's options: the same check, the same line
    "usage_config_missing_file_run": dict(
        args=["run", "--config", "/nonexistent/m.conf", case_file("ok.lua")], code=2,
        err=[r"\Amutirao: --config /nonexistent/m\.conf: No such file or directory\n\Z"]),
    "usage_config_directory": dict(
        args=["--config", CASES_DIR, "run", case_file("ok.lua")], code=2,
        err=[r"\Amutirao: --config \S+/cases: Is a directory\n\Z"]),
    "usage_config_missing_file_dlq": dict(
        args=["dlq", "list", "p", "--config", "/nonexistent/m.conf"], code=2,
        err=[r"\Amutirao dlq: --config /nonexistent/m\.conf: No such file or directory\n\Z"]),
    "usage_config_missing_file_dlq_first": dict(
        args=["dlq", "--config=/nonexistent/m.conf", "retry", "p", "--all"], code=2,
        err=[r"\Amutirao dlq: --config /nonexistent/m\.conf: No such file or directory\n\Z"]),
    "usage_config_missing_file_stats": dict(
        args=["stats", "p", "--config", "/nonexistent/m.conf"], code=2,
        err=[r"\Amutirao stats: --config /nonexistent/m\.conf: No such file or directory\n\Z"]),
    "usage_config_missing_file_top": dict(
        args=["top", "--config", "/nonexistent/m.conf"], code=2,
        err=[r"\Amutirao top: --config /nonexistent/m\.conf: No such file or directory\n\Z"]),
    "usage_config_missing_file_dashboard": dict(
        args=["dashboard", "--config", "/nonexistent/m.conf"], code=2,
        err=[r"\Amutirao dashboard: --config /nonexistent/m\.conf: No such file or directory\n\Z"]),
    # --config without a file: the same line from every command
    "usage_config_no_file": dict(
        args=["--config"], code=2,
        err=[r"\Amutirao: option --config needs a file \(see mutirao --help\)\n\Z"]),
    "usage_config_no_file_run": dict(
        args=["run", case_file("ok.lua"), "--config="], code=2,
        err=[r"\Amutirao: option --config needs a file \(see mutirao run --help\)\n\Z"]),
    "usage_config_no_file_stats": dict(
        args=["stats", "p", "--config"], code=2,
        err=[r"\Amutirao stats: option --config needs a file \(see mutirao stats --help\)\n\Z"]),
    "usage_config_no_file_dlq": dict(
        args=["dlq", "list", "p", "--config"], code=2,
        err=[r"\Amutirao dlq: option --config needs a file \(see mutirao dlq help\)\n\Z"]),
    "usage_config_no_file_dashboard": dict(
        args=["dashboard", "--config="], code=2,
        err=[r"\Amutirao dashboard: option --config needs a file \(see mutirao dashboard "
             r"--help\)\n\Z"]),
    # the file given among run's or config's options is the one read
    "config_file_option_read": dict(
        args=["config", "--config", case_file("other.conf")], code=0,
        out=[r"# file: \S+/cases/other\.conf\n", r"redis\.url = redis://127\.0\.0\.1:6390\b"]),
    # --config given again: the last one is read (before the command and in it)
    "config_file_option_last": dict(
        args=["--config", case_file("other.conf"), "--config=" + case_file("other2.conf"),
              "config"], code=0,
        out=[r"# file: \S+/cases/other2\.conf\n", r"redis\.url = redis://127\.0\.0\.1:6392\b"]),
    "config_file_option_last_in_command": dict(
        args=["--config", case_file("other2.conf"), "config", "--config", case_file("other.conf")],
        code=0,
        out=[r"# file: \S+/cases/other\.conf\n", r"redis\.url = redis://127\.0\.0\.1:6390\b"]),
    "run_config_file_option_read": dict(
        args=["run", "--fleet", "--config=" + case_file("other.conf"),
              case_file("fleet_pool_create.lua")], code=0, max_s=20,
        out=[r"\Anil\tpool 'cfgfile': kafka: .*\(brokers 127\.0\.0\.1:6391;"]),
    "ops_config_file_option_read": dict(
        args=["pools", "--config", case_file("other.conf")], code=1, max_s=10,
        err=[r"\Amutirao: cannot reach Redis at redis://127\.0\.0\.1:6390 within 300 ms"]),
    # pools, stats, task, workers: usage errors need no Redis (tests/ops runs the rest)
    "ops_help": dict(args=["pools", "--help"], code=0,
                     out=[r"usage: mutirao pools \[--json\]", r"mutirao task ID", r"Exit status"]),
    "ops_stats_no_pool": dict(
        args=["stats"], code=2,
        err=[r"\Amutirao: stats: no pool given \(see mutirao stats --help\)\n\Z"]),
    "ops_task_no_id": dict(
        args=["task", "--json"], code=2,
        err=[r"\Amutirao: task: no id given \(see mutirao task --help\)\n\Z"]),
    "ops_unknown_option": dict(
        args=["workers", "--frob"], code=2,
        err=[r"\Amutirao: unknown option '--frob' \(see mutirao workers --help\)\n\Z"]),
    "ops_extra_argument": dict(
        args=["pools", "x"], code=2,
        err=[r"\Amutirao: unexpected argument 'x' \(see mutirao pools --help\)\n\Z"]),
    "ops_bad_pool": dict(
        args=["stats", "bad pool!"], code=2, err=[r"\Amutirao: invalid pool name 'bad pool!'"]),
    "ops_redis_unreachable": dict(
        args=["pools"], code=1, max_s=3,
        env={"MUTIRAO_REDIS_URL": "redis://127.0.0.1:1", "MUTIRAO_CONNECT_TIMEOUT_MS": "1000"},
        err=[r"\Amutirao: cannot reach Redis at redis://127\.0\.0\.1:1 within 1000 ms "
             r"\(redis\.url\)\n\Z"]),
    "usage_help": dict(args=["--help"], code=0, out=[r"usage: mutirao", r"--workflow NAME"]),
    "version": dict(args=["version"], code=0, out=[r"^mutirao \d+\.\d+\.\d+ \(Lua 5\.4"]),
    "param": dict(
        args=["run", case_file("params.lua"), "--param", "env=prod", "--param=region=eu-west-1",
              "--param", "expr=a=b"], code=0,
        out=[r"param env=prod\n", r"param expr=a=b\n", r"param region=eu-west-1\n",
             r"show\s+success\s+\S+\s+env is prod"]),
    "param_missing_fails_task": dict(
        args=["run", case_file("params.lua")], code=1,
        out=[r"show\s+failed\s+\S+\s+env is nil"]),
    "workflow_all_in_order": dict(
        args=["run", case_file("workflows.lua")], code=0,
        out=[r"alpha ran\n(.*\n)*beta ran", r"(?m)^alpha\s+alpha_task\s+success",
             r"(?m)^beta\s+beta_task\s+success"]),
    "workflow_select": dict(
        args=["run", "-f", case_file("workflows.lua"), "--workflow", "beta"], code=0,
        out=[r"beta ran", r"(?m)^beta\s+beta_task\s+success"], not_out=[r"alpha"]),
    "workflow_unknown": dict(
        args=["run", case_file("workflows.lua"), "--workflow", "gamma"], code=2,
        err=[r"no workflow named 'gamma' \(defined: alpha, beta\)"], not_out=[r"ran"]),
    "depends_on_skip": dict(
        args=["run", case_file("depends.lua")], code=1,
        out=[r"(?m)^deps\s+a\s+failed\s+\S+\s+a broke$",
             r"(?m)^deps\s+b\s+skipped\s+-\s+dependency 'a' failed$",
             r"(?m)^deps\s+c\s+skipped\s+-\s+dependency 'b' was skipped$",
             r"(?m)^deps\s+d\s+success", r"d ran: d"],
        not_out=[r"b ran", r"c ran"]),
    "depends_on_cycle": dict(
        args=["run", case_file("cycle.lua")], code=2,
        err=[r"workflow 'loop': dependency cycle: x -> z -> y -> x"],
        not_out=[r"ran"], not_err=[r"started"]),
    "depends_on_unknown": dict(
        args=["run", case_file("unknown_dep.lua")], code=2,
        err=[r"task 'a' depends on unknown task 'ghost'"], not_out=[r"ran"]),
    "definition_bad_timeout": dict(
        args=["run", case_file("bad_timeout.lua")], code=2,
        err=[r"\Amutirao: \S*bad_timeout\.lua:2: task 't': invalid timeout \"5 parsecs\""]),
    "definition_no_command": dict(
        args=["run", case_file("no_command.lua")], code=2,
        err=[r"no_command\.lua:2: task 'empty' has no command"]),
    "task_timeout_cancels": dict(
        args=["run", case_file("task_timeout.lua"), "--param", "marker={marker}"], code=1,
        out=[r"(?m)^timeouts\s+spin\s+timeout\s+\S+\s+task timed out after 300ms$",
             r"(?m)^timeouts\s+linger\s+success"],
        not_out=[r"unreachable"], min_s=1.7, max_s=3.0, check=marker_never_written),
    "task_waits_for_goroutines": dict(
        args=["run", case_file("waits_for_goroutines.lua")], code=0,
        out=[r"goroutines done: 3", r"(?m)^fanout\s+fanout\s+success\s+(5\d\d|6\d\d)ms",
             r"(?m)^fanout\s+check\s+success\s+\S+\s+saw 3$"], min_s=0.45, max_s=2.0),
    "workflow_timeout": dict(
        args=["run", case_file("workflow_timeout.lua")], code=1,
        out=[r"(?m)^bounded\s+quick\s+success",
             r"(?m)^bounded\s+slow\s+timeout\s+\S+\s+workflow 'bounded' timed out after 400ms$",
             r"(?m)^bounded\s+after\s+skipped"],
        not_out=[r"slow finished", r"after ran"], max_s=2.0),
    "deadlock": dict(
        args=["run", case_file("deadlock.lua")], code=1,
        err=[r"fatal: all goroutines are asleep - deadlock!",
             r"goroutine \d+ \[blocked\]:\nstack traceback:\n(.*\n)*.*deadlock\.lua:10: in main chunk",
             r"deadlock\.lua:8:"], max_s=3.0),
    "deadlock_json": dict(
        args=["run", "--log-format", "json", case_file("deadlock.lua")], code=1,
        check_streams=check_deadlock_json, max_s=3.0),
    "command_results": dict(
        args=["run", case_file("command_results.lua")], code=1,
        out=[r"w\s+nil_msg\s+failed\s+\S+\s+broke\n", r"w\s+false_msg\s+failed\s+\S+\s+broke too\n",
             r"w\s+nothing\s+success\b", r"w\s+true_msg\s+success\s+\S+\s+fine\n",
             r"w\s+nil_only\s+success\b", r"5 tasks: 3 success, 2 failed"]),
    "goroutine_error_logged": dict(
        args=["run", case_file("goroutine_error.lua")], code=0,
        err=[r"ERROR \[resilient g\d+\] goroutine \d+ failed: \S*goroutine_error\.lua:7: worker exploded\n"
             r"stack traceback:"],
        out=[r"task still running after the goroutine failed", r"resilient\s+success"]),
    "plain_script_goroutine_error": dict(
        args=["run", case_file("plain_goroutine_error.lua")], code=0,
        err=[r"goroutine \d+ failed: \S*plain_goroutine_error\.lua:3: background failure"],
        out=[r"main chunk finished"], not_out=[r"WORKFLOW"]),
    "goroutine_stack_overflow": dict(
        args=["run", case_file("stack_overflow.lua")], code=0, timeout=40,
        err=[r"goroutine \d+ failed: \S*stack_overflow\.lua:5: stack overflow\n"
             r"stack traceback:\n\s+\S*stack_overflow\.lua:5: in upvalue 'f'"],
        out=[r"(?m)^false\t\S*stack_overflow\.lua:5: stack overflow$", r"(?m)^end$"]),
    "spawn_many_out_of_memory": dict(
        args=["run", case_file("spawn_many_oom.lua")], code=1, address_space=150 << 20,
        out=[r"(?m)^false\tnot enough memory$", r"(?m)^ran\t0$", r"(?m)^usable\t3$"],
        err=[r"ERROR \[g\d+\] error: not enough memory\nstack traceback:\n"
             r"\s+\[C\]: in function 'goroutine\.spawn_many'"],
        not_out=[r"unreachable"], not_err=[r"unprotected|fatal"], max_s=20),
    "delegate_to_local": dict(
        args=["run", case_file("delegate.lua")], code=0,
        err=[r"task 'remote_job' delegated to 'mariguica': no fleet configured, running locally"],
        out=[r"remote_job\s+success\s+\S+\s+ran here"]),
    "pool_tasks_log": dict(
        args=["run", case_file("pool_log.lua")], code=0,
        err=[r"INFO  .*pool item 1$", r"INFO  .*pool item 3$"],
        out=[r"pooled\s+success\s+\S+\s+completed 3, failed 0"]),
    "pool_goroutine_global": dict(
        args=["run", case_file("pool_goroutine_global.lua")], code=0,
        out=[r"(?m)^true\tpool task has function$"]),
    "pool_fire_and_forget": dict(
        args=["run", case_file("pool_fire_and_forget.lua")], code=0,
        err=[r"main chunk ends", r"task 1 done$", r"task 2 done$", r"task 3 done$", r"task 4 done$"]),
    "bad_tostring_error_values": dict(
        args=["run", case_file("bad_tostring.lua")], code=0,
        out=[r"await:\s+false\s+table\s+7\s+true", r"async:\s+false\s+8", r"survived"],
        err=[r"goroutine \d+ failed: table: 0x[0-9a-f]+\nstack traceback:\n.*\n.*bad_tostring\.lua:7:",
             r"goroutine \d+ failed: table: 0x[0-9a-f]+\nstack traceback:\n.*\n.*bad_tostring\.lua:8:",
             r"pool task \S+ of pool bad_tostring \(submitted at \S+bad_tostring\.lua:10\) failed: "
             r"table: 0x"],
        not_err=[r"fatal", r"unprotected"], max_s=5),
    "pool_os_exit": dict(
        args=["run", case_file("pool_os_exit.lua")], code=0,
        out=[r"await:\s+false\s+\S*pool_os_exit\.lua:4: os\.exit called in a pool task: a pool "
             r"task cannot end its process",
             r"caught:\s+true\s+false\s+true", r"after:\s+true\s+next task runs"],
        err=[r"pool task \S+ of pool exiting \(submitted at \S+pool_os_exit\.lua:4\) failed: "
             r"\S+ os\.exit called in a pool task"], max_s=5),
    "pool_limits": dict(
        args=["run", case_file("pool_limits.sloth")], code=0,
        out=[r"(?m)^limits\s+limits\s+success\s+\S+\s+next task gave 42$",
             r"(?m)^limits\s+lingering\s+success\s+\S+\s+task returned$"],
        err=[r"spin:\s+false\s+timeout after 200 ms", r"hog:\s+false\s+not enough memory",
             r"pool task \S+ of pool bounded \(submitted at \S+pool_limits\.sloth:7\) failed: "
             r"timeout after 200 ms"], max_s=5),
    "bad_env": dict(
        args=["run", case_file("bad_env.lua")], code=0,
        env={"MUTIRAO_PROCS": "lots", "MUTIRAO_SLICE_MS": "0", "MUTIRAO_PREEMPT": "yes"},
        out=[r"pool:\s+true\s+42", r"timeout:\s+false\s+timeout after 20 ms"],
        err=[r"MUTIRAO_PROCS=lots ignored \(a whole number from 1 to 256 expected\); using \d+",
             r"MUTIRAO_SLICE_MS=0 ignored \(a whole number from 1 to 60000 expected\); using 10",
             r"MUTIRAO_PREEMPT=yes ignored \(a whole number from 0 to 1 expected\); using 1"],
        max_s=5),
    "await_after_timeout": dict(
        args=["run", case_file("await_after_timeout.lua")], code=0,
        out=[r"timeout:\s+false\s+timeout after 50 ms", r"await:\s+true\s+late result"],
        not_err=[r"deadlock"], max_s=5),
    "pool_goroutines_outlive_task": dict(
        args=["run", case_file("pool_goroutines_outlive_task.lua")], code=0,
        out=[r"await:\s+true\s+task returned", r"all done:\s+0"],
        not_err=[r"deadlock"], min_s=0.25, max_s=5),
    "pool_wg_deadlock": dict(
        args=["run", case_file("pool_wg_deadlock.lua")], code=1,
        out=[r"await:\s+true\s+forgot done\(\)"], not_out=[r"unreachable"],
        err=[r"fatal: all goroutines are asleep - deadlock!",
             r"pool_wg_deadlock\.lua:12: in main chunk"], max_s=5),
    "pool_task_outlives_timeout": dict(
        args=["run", case_file("pool_task_outlives_timeout.lua")], code=1,
        out=[r"\bt\s+timeout\b"], max_s=5),
    "exec_task_timeout_kills_group": dict(
        args=["run", case_file("exec_task_timeout.lua"), "--param", "marker={marker}"], code=1,
        out=[r"(?m)^exec_timeout\s+slow_command\s+timeout\s+\S+\s+task timed out after 300ms$"],
        not_out=[r"unreachable"], max_s=3.0, check=exec_group_gone),
    "io_globals": dict(
        args=["run", case_file("io_globals.lua")], code=0,
        out=[r"pool task: function from the pool", r"globals\s+success\s+\S+\s+globals ok"]),
    "log_format_json": dict(
        args=["run", case_file("ok.lua"), "--log-format", "json"], code=0,
        check_streams=check_json_lines),
    "log_level_flag": dict(
        args=["run", case_file("levels.lua"), "--log-level", "warn"], code=0,
        err=[r"WARN  \[g\d+\] warn record", r"ERROR \[g\d+\] error record"],
        not_err=[r"info record", r"debug record"]),
    "log_level_env": dict(
        args=["run", case_file("levels.lua")], env={"MUTIRAO_LOG_LEVEL": "debug"}, code=0,
        err=[r"DEBUG \[g\d+\] debug record", r"INFO  \[g\d+\] info record"]),
    "log_level_default": dict(
        args=["run", case_file("levels.lua")], code=0,
        err=[r"info record", r"warn record"], not_err=[r"debug record"]),
}


def run_case(mutirao, name):
    c = CASES[name]
    tmp = tempfile.mkdtemp(prefix="mutirao-cli-")
    ctx = {"marker": os.path.join(tmp, "marker.txt")}
    args = [a.format(**ctx) for a in c["args"]]
    env = dict(os.environ)
    env.pop("MUTIRAO_LOG_LEVEL", None)
    env.update(c.get("env", {}))
    import subprocess
    preexec = None
    if "address_space" in c:
        # a sanitizer's shadow memory does not fit in a small address space
        if "ASAN_OPTIONS" in env or "TSAN_OPTIONS" in env:
            print("ok (skipped under a sanitizer): " + name)
            return 0
        import resource
        limit = c["address_space"]
        preexec = lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    t0 = time.monotonic()
    try:
        p = subprocess.run([mutirao] + args, capture_output=True, env=env,
                           timeout=c.get("timeout", 60), preexec_fn=preexec)
    except subprocess.TimeoutExpired as e:
        # a hang is a failure with what was written so far, not a traceback
        print("$ mutirao %s" % " ".join(args))
        print("--- stdout ---\n%s--- stderr ---\n%s--------------" % (
            (e.stdout or b"").decode("utf-8", "replace"),
            (e.stderr or b"")[-4000:].decode("utf-8", "replace")))
        print("FAIL: still running after %ds (killed)" % c.get("timeout", 60))
        return 1
    elapsed = time.monotonic() - t0
    out = p.stdout.decode("utf-8", "replace")
    err = p.stderr.decode("utf-8", "replace")
    problems = []
    if p.returncode != c["code"]:
        problems.append("exit status %d, expected %d" % (p.returncode, c["code"]))
    for pat in c.get("out", []):
        if not re.search(pat, out):
            problems.append("stdout lacks /%s/" % pat)
    for pat in c.get("err", []):
        if not re.search(pat, err, re.M):
            problems.append("stderr lacks /%s/" % pat)
    for pat in c.get("not_out", []):
        if re.search(pat, out):
            problems.append("stdout has /%s/" % pat)
    for pat in c.get("not_err", []):
        if re.search(pat, err):
            problems.append("stderr has /%s/" % pat)
    if re.search(r"(Address|Leak|Undefined)Sanitizer|runtime error: ", err):
        problems.append("a sanitizer reported an error (see stderr)")
    if "min_s" in c and elapsed < c["min_s"]:
        problems.append("took %.2fs, expected at least %.2fs" % (elapsed, c["min_s"]))
    if "max_s" in c and elapsed > c["max_s"]:
        problems.append("took %.2fs, expected at most %.2fs" % (elapsed, c["max_s"]))
    if "check" in c:
        msg = c["check"](ctx)
        if msg:
            problems.append(msg)
    if "check_streams" in c:
        msg = c["check_streams"](out, err)
        if msg:
            problems.append(msg)
    print("$ mutirao %s   (%.2fs, exit %d)" % (" ".join(args), elapsed, p.returncode))
    if problems:
        print("--- stdout ---\n%s--- stderr ---\n%s--------------" % (out, err))
        for pr in problems:
            print("FAIL: " + pr)
        return 1
    print("ok: " + name)
    return 0


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    if sys.argv[2] == "--list":
        print("\n".join(CASES))
        return 0
    return run_case(sys.argv[1], sys.argv[2])


if __name__ == "__main__":
    sys.exit(main())
