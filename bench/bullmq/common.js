// bench/bullmq/common.js: what throughput.js, latency.js and worker.js share:
// the Redis connection (MUTIRAO_TEST_REDIS_URL, as written by
// tests/services.sh into build-services/env.sh, or REDIS_URL) and the CPU
// time of the processes named by BENCH_CPU_PIDS ("NAME=PID NAME=PID ...").
'use strict';
const fs = require('fs');
const IORedis = require('ioredis');

const redisUrl =
  process.env.MUTIRAO_TEST_REDIS_URL ||
  process.env.REDIS_URL ||
  'redis://127.0.0.1:6379';

// a new connection; BullMQ's workers need maxRetriesPerRequest null
function connection() {
  return new IORedis(redisUrl, { maxRetriesPerRequest: null });
}

// utime + stime of a process in clock ticks (fields 14 and 15 of
// /proc/PID/stat, counted after the parenthesised command name)
function ticks(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch (e) {
    return null;
  }
}

function watched(extra) {
  const out = [];
  const spec = process.env.BENCH_CPU_PIDS || '';
  for (const m of spec.matchAll(/([\w]+)=(\d+)/g)) {
    out.push({ name: m[1], pid: m[2] });
  }
  return out.concat(extra || []);
}

// a mark of this process's CPU time (µs) and the watched processes' ticks
function cpuMark(procs) {
  const u = process.cpuUsage();
  const m = { self: u.user + u.system };
  for (const w of procs) m[w.name] = ticks(w.pid);
  return m;
}

// "cpu_self_us=U cpu_ticks_NAME=T ...": spent between two marks
function cpuFields(procs, a, b) {
  const out = [`cpu_self_us=${Math.round(b.self - a.self)}`];
  for (const w of procs) {
    if (a[w.name] != null && b[w.name] != null) {
      out.push(`cpu_ticks_${w.name}=${b[w.name] - a[w.name]}`);
    }
  }
  return out.join(' ');
}

function pct(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.max(0, Math.ceil(sorted.length * p) - 1)];
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

module.exports = { redisUrl, connection, ticks, watched, cpuMark, cpuFields, pct, sleep };
