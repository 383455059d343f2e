/*
** fleet_keys.h: what the fleet keeps in Redis, shared by the producer side
** (lua/fleet/fleet_pool.c) and the worker (worker/): key names, the Lua
** scripts and the notification records. docs/ARCHITECTURE.md explains the
** life of a task; this file is the byte-level contract.
**
** Keys (NAME = pool, ID = task id, P = producer id):
**   mutirao:pool:NAME         hash: workers, queue, block, max_deliveries,
**                             timeout (ms, 0: none), memory (bytes),
**                             allow (the sandbox narrowing, allow.h; 0:
**                             none): pool_create's options, adopted by
**                             producers that submit to the pool; workers
**                             caps each worker process (max_deliveries,
**                             timeout, memory and allow reach workers in
**                             each task's envelope)
**   mutirao:pool:NAME:stats   hash: submitted, completed, failed,
**                             dead_lettered (of the failed), retried
**                             (attempts that raised and were run again)
**   mutirao:pool:NAME:active  hash: worker id -> "COUNT MS INCARNATION" (tasks
**                             running on that worker, Unix ms of the report,
**                             the process's random hex tag); reports
**                             older than FLEET_ACTIVE_STALE_MS are ignored
**   mutirao:task:ID           the result record (envelope_result), signed
**                             when the worker has auth.signing_key; set once
**                             per task (the seen bit, not the key, says
**                             "completed")
**   mutirao:task:ID:q         "1" while submitted and not yet completed: the
**                             marker of producers before mutirao:sub (and of
**                             `mutirao dlq retry`), still read by the lookup
**                             and deleted at completion
**   mutirao:task:ID:w         the task's changes of its producer's WaitGroups,
**                             "WGID DELTA" lines (only when it made some; same
**                             life as mutirao:task:ID): what the producer
**                             applies when it finds the record without its
**                             notifications (lua/fleet/fleet_reconcile.h)
**   mutirao:task:ID:info      "STATE ATTEMPT SUBMITTED STARTED FINISHED WORKER
**                             POOL\n"
**                             + the error (a codec value, failures only):
**                             what `mutirao task ID` shows, STATE completed,
**                             failed, dead_lettered or retrying, times Unix
**                             ms (0: unknown); written with the outcome (or
**                             a retry) by the completion script, kept
**                             task.info_ttl_s for a completed task (0, the
**                             default: not written), result.ttl_s for the
**                             others; not deleted by await
**   mutirao:worker:W          hash: worker W's registry entry, refreshed
**                             every FLEET_WORKER_REPORT_MS, expires after
**                             FLEET_WORKER_TTL_S: host, pid, version,
**                             started, seen (Unix ms), serves (its --pools,
**                             "*": all), threads, running, slots, and per
**                             pool it ran tasks of "pool:NAME" = "RUNNING
**                             SLOTS DONE_LAST_MINUTE"
**   mutirao:workers           sorted set: worker id -> Unix ms it was last
**                             seen (members older than FLEET_WORKER_TTL_S
**                             are gone; the set itself expires with them)
**   mutirao:task:ID:in        a task's payload over payload.max_bytes (the
**                             envelope has ref_len and ref_sum instead)
**   mutirao:task:ID:out       a result's payload over payload.max_bytes,
**                             set with the result record (same TTL)
**   mutirao:delivery:ID       "COUNT FIRST LAST HISTORY": deliveries that ran
**                             it, Unix ms of the first and the latest, and
**                             "WORKER@MS ..." of the latest FLEET_HISTORY_MAX
**                             (oldest first); FLEET_DELIVERY_TTL_S after the
**                             latest delivery; deleted with the outcome
**   mutirao:pool:NAME:dead    hash: task id -> dead letter, the text
**                             "COUNT FIRST LAST DEAD_AT\nHISTORY\nERROR"
**                             (times in Unix ms; ERROR may hold anything)
**   mutirao:pool:NAME:dead:env  hash: task id -> its task envelope (bytes)
**   mutirao:seen:P:N          bitmap: bit S % FLEET_SEEN_SHARD is set once
**                             task P:S completed, S / FLEET_SEEN_SHARD = N;
**                             it outlives the result key (deleted once
**                             awaited) so a late re-delivery of the task is
**                             still known as done
**   mutirao:sub:P:N           bitmap, same shards as mutirao:seen: bit set once
**                             task P:S was submitted (never cleared but by a
**                             failed `mutirao dlq retry`; the seen bit says
**                             whether it completed since); same TTL
**   mutirao:done:P            list of notifications for producer P
**   mutirao:retries           sorted set of the attempts due again (pools with
**                             `retries`), every pool's: member "ID ENVELOPE"
**                             (the task envelope of the next attempt), score
**                             the Unix ms it is due (or, once a worker claimed
**                             it, when its lease of FLEET_RETRY_LEASE_MS ends)
**   mutirao:retries:signed    the same, for signed envelopes (older workers,
**                             which cannot read them, do not look there)
** Retention (docs/ARCHITECTURE.md, "What Redis keeps"): await deletes the
** task's keys (fleet_task_keys) once it read the outcome; an outcome
** nobody awaits keeps result.ttl_s; the seen bitmaps live result.ttl_s
** after their last bit; the pool keys expire FLEET_POOL_IDLE_TTL_S after the pool's last
** submit, completion or report, FLEET_POOL_CLOSED_TTL_S after a
** pool_close (any later use extends them again).
** Two layouts of these names, one per fleet (fleet_keys_set_tagged):
**   flat (redis://, rediss://, unix://): the names above.
**   tagged (redis+cluster://, rediss+cluster://): every name is
**     "mutirao:{TAG}:" + the name above without "mutirao:", TAG the slot it
**     shares: the task id's producer part (fleet_id_tag) for the task's keys
**     (task, delivery, seen, sub), the producer for its notification list,
**     the pool name for the pool's hash, :active, :stats, :dead, :dead:env
**     and :producers, "retries" for the two retry sets, "workers" for
**     the worker registry (worker:W and workers). Two more kinds:
**   mutirao:{P}:stats:NAME    hash: the pool's counters of the tasks of
**                             producer P (submitted, completed, failed,
**                             retried); the pool's :stats holds those
**                             counted in the pool's slot (dead_lettered,
**                             unauthenticated, `mutirao dlq retry`'s
**                             submitted); pool_stats sums them all
**   mutirao:{NAME}:pool:NAME:producers  sorted set: producer -> Unix ms of
**                             its latest submit to the pool (written before
**                             its first task is produced): whose
**                             mutirao:{P}:stats:NAME pool_stats sums
**   mutirao:{T}:task:ID:x     list: owner, element, ... the notifications of
**                             a completed task for lists outside its slot
**                             (another producer's WaitGroup changes), left
**                             by the completion for the worker to push
**                             (FLEET_NOTIFY_LUA) and delete afterwards
**   mutirao:{O}:pushed:ID     "1" once task ID's notifications reached
**                             producer O's list (FLEET_NOTIFY_LUA), so a
**                             replay pushes nothing twice
**   Each script call runs in one slot: KEYS[1] is the prefix of its slot
**   (fleet_prefix: "mutirao:" flat, "mutirao:{TAG}:" tagged), the one key
**   the client routes by, and the script builds its names from it; the
**   client splits batches per slot. docs/ARCHITECTURE.md, "Redis Cluster",
**   says how each step that spans two slots stays exact.
** Task ids and pool names never hold spaces or newlines (envelope.h).
** Notifications (list elements) start with one type byte:
**   'R' + result record       a task of P completed (exactly once)
**   'W' + "WGID DELTA" + NUL + "TASKID N"
**                             task TASKID changed WaitGroup WGID of P by
**                             DELTA; it pushed N such elements to this list,
**                             just before its 'R' when TASKID is P's task (a
**                             reader sees whether it got them all). A reader
**                             that stops at the NUL sees the older
**                             "WGID DELTA" element.
*/
#ifndef MUTIRAO_FLEET_KEYS_H
#define MUTIRAO_FLEET_KEYS_H

#include <stddef.h>

#define FLEET_KEY_MAX 300
#define FLEET_ACTIVE_STALE_MS 5000
#define FLEET_NOTIFY_TTL_S 86400 /* a producer's notification list, after its last push */
#define FLEET_GROUP "mutirao.workers"
#define FLEET_POOL_IDLE_TTL_S 604800 /* pool keys, after the pool's last use (7 days) */
#define FLEET_POOL_CLOSED_TTL_S 3600 /* pool keys, after a pool_close */
#define FLEET_SEEN_SHARD 4096        /* task sequence numbers per seen bitmap (512 bytes) */
#define FLEET_TASK_KEYS 5            /* per-task keys besides the seen bit: fleet_task_keys */
#define FLEET_RETRIES_KEY "mutirao:retries"
/* The same for signed envelopes (docs/wire-format.md): a set of its own,
 * which workers from before signed envelopes do not read (they would drop
 * a member they cannot decode). */
#define FLEET_RETRIES_SIGNED_KEY "mutirao:retries:signed"
#define FLEET_WORKER_REPORT_MS 2000 /* a worker refreshes its registry entry */
#define FLEET_WORKER_TTL_S 15       /* and is gone from it that long after */
#define FLEET_RETRY_LEASE_MS 30000  /* a claimed retry is claimed again after this */
#define FLEET_RETRY_CLAIM_MAX 100   /* retries claimed per call */
#define FLEET_FAILURES_LAST "99"    /* a pool's recent failures: the newest 100 ids */

/*
** Lua shared by the scripts: seen(id) returns the seen bitmap's key and bit
** of a task id PRODUCER:SEQ:RANDOM (or PRODUCER:SEQ, the ids of producers
** before random ids; nil for an id of another form, whose
** completion then rests on the result key alone); done_at(id, key, bit)
** reads that bit, or the result key for an id without one (bit ""), done(id)
** the same from the id (the completion script sets the bit with the result,
** and the bitmap outlives it: one call per task); touch(key, ttl) sets a
** TTL (none for 0). The hot scripts (submit, delivery, completion) get
** each task's key and bit from the client (fleet_bit_of, the same
** computation in C): parsing ids in Redis was a quarter of its CPU per
** task. count(t, pool, field, n) adds to a pool's stats counter and
** hincr_all(t) writes them (one HINCRBY per pool and field per call).
*/
#define FLEET_SEEN_LUA                                                                             \
    FLEET_CONSTANTS_LUA                                                                            \
    "local function seen(id)\n"                                                                    \
    "  local p, n = string.match(id, '^(.+):(%d+):%x+$')\n"                                        \
    "  if not p then p, n = string.match(id, '^(.+):(%d+)$') end\n"                                \
    "  n = tonumber(n)\n"                                                                          \
    "  if not n or n > 1e15 then return nil end\n"                                                 \
    "  return string.format('%sseen:%s:%d', pre, p, math.floor(n / SEEN_SHARD)),\n"                \
    "    string.format('%d', n % SEEN_SHARD)\n"                                                    \
    "end\n"                                                                                        \
    "local function done_at(id, k, b)\n"                                                           \
    "  if b ~= '' then return redis.call('GETBIT', k, b) == 1 end\n"                               \
    "  return redis.call('EXISTS', pre .. 'task:' .. id) == 1\n"                                   \
    "end\n"                                                                                        \
    "local function done(id)\n"                                                                    \
    "  local k, b = seen(id)\n"                                                                    \
    "  return done_at(id, k or '', b or '')\n"                                                     \
    "end\n"                                                                                        \
    "local function touch(k, ttl)\n"                                                               \
    "  if ttl > 0 then redis.call('EXPIRE', k, string.format('%d', ttl)) end\n"                    \
    "end\n"                                                                                        \
    "local function setx(k, v, ttl)\n"                                                             \
    "  if ttl > 0 then return redis.call('SET', k, v, 'EX', string.format('%d', ttl)) end\n"       \
    "  return redis.call('SET', k, v)\n"                                                           \
    "end\n"                                                                                        \
    "local function count(t, pool, f, n)\n"                                                        \
    "  local c = t[pool] or {}\n"                                                                  \
    "  t[pool] = c\n"                                                                              \
    "  c[f] = (c[f] or 0) + n\n"                                                                   \
    "end\n"                                                                                        \
    "local function statskey(pool)\n"                                                              \
    "  if tagged then return pre .. 'stats:' .. pool end\n"                                        \
    "  return pre .. 'pool:' .. pool .. ':stats'\n"                                                \
    "end\n"                                                                                        \
    "local function hincr_all(t)\n"                                                                \
    "  for pool, c in pairs(t) do\n"                                                               \
    "    local k = statskey(pool)\n"                                                               \
    "    for f, n in pairs(c) do redis.call('HINCRBY', k, f, n) end\n"                             \
    "    redis.call('EXPIRE', k, POOL_IDLE_TTL)\n"                                                 \
    "  end\n"                                                                                      \
    "end\n"
/* The C constants above, as Lua locals of the scripts. */
#define FLEET_CONSTANTS_LUA                                                                        \
    "local SEEN_SHARD, POOL_IDLE_TTL = " FLEET_STR(FLEET_SEEN_SHARD) ", " FLEET_STR(               \
        FLEET_POOL_IDLE_TTL_S) "\n"                                                                \
                               "local ACTIVE_STALE = " FLEET_STR(                                  \
                                   FLEET_ACTIVE_STALE_MS) "\n"                                     \
                                                          "local pre = KEYS[1]\n"                  \
                                                          "local tagged = pre ~= 'mutirao:'\n"     \
                                                          "local tag = tagged and "                \
                                                          "string.sub(pre, 10, -3)\n"
#define FLEET_STR_(x) #x
#define FLEET_STR(x) FLEET_STR_(x)

#define FLEET_MAX_DELIVERIES 3             /* pool_create's default max_deliveries */
#define FLEET_DELIVERY_TTL_S 604800        /* a delivery record, after its latest delivery */
#define FLEET_DELIVERY_BUSY 999999999999   /* FLEET_DELIVER_LUA: running on a live worker */
#define FLEET_DELIVERY_ALONE 999999999998  /* FLEET_DELIVER_LUA: its last delivery, run it alone */
#define FLEET_DELIVERY_REPLAY 999999999997 /* FLEET_DELIVER_LUA: done, its outbox to push */
#define FLEET_DELIVERY_ASK 999999999996    /* FLEET_DELIVER_LUA: is its latest worker alive? */
#define FLEET_HISTORY_MAX 10 /* deliveries a record's history keeps (the script's 10) */

/*
** Before a worker runs tasks: their delivery records, batched. ARGV[1] now
** (Unix ms), ARGV[2] this worker process, "ID#INCARNATION" (fleet_worker_tag),
** ARGV[3] record TTL s, then per task: id, max_deliveries, pool, alone ("1"
** when the worker asks to run it with no other task beside it, else "0"),
** its seen bitmap's key and bit (fleet_bit_of; "" "" for none), and what
** the worker knows of the latest delivery's worker: "" (nothing: the flat
** layout reads the pool's :active itself, the tagged one, where :active
** is in another slot, answers FLEET_DELIVERY_ASK instead), "1" (alive, see
** below) or "0". KEYS[1]: the prefix of the tasks' slot. Returns one
** string, the answers separated by commas (one reply object, not one per
** task), per task: 0 when its outcome is recorded already (its result key or
** seen bit: do not run it again); FLEET_DELIVERY_BUSY when its latest
** delivery went to another worker process that is still running tasks of
** the pool (its report in :active, same incarnation, fresher than
** FLEET_ACTIVE_STALE_MS: the partition moved while the task ran there; ask
** again later, neither run nor count it); -N when N deliveries ran it
** without an outcome and N >= max_deliveries (dead-letter it; the record is
** unchanged); FLEET_DELIVERY_ALONE, uncounted, when not asked alone and the
** delivery would be its last (a worker died while it ran, N + 1 =
** max_deliveries): the worker runs it with no task beside it, so that a
** crash counts against the task that caused it only; else N > 0, this
** delivery's number, after counting it; in the tagged layout two more:
** FLEET_DELIVERY_ASK, uncounted, when the latest delivery went to another
** worker process and the call did not say whether it is alive (the worker
** reads the record's latest worker and the pool's :active, then asks again
** with "1" or "0"), and FLEET_DELIVERY_REPLAY for a completed task whose
** notifications for other slots are still waiting (mutirao:{T}:task:ID:x: a
** worker stopped between the completion and their push; push them, then
** treat it as 0). A first delivery costs the done() check and a SET NX EX;
** later ones a GET and a SET EX more.
*/
/* The answers FLEET_DELIVER_LUA gives besides counts, as Lua locals. */
#define FLEET_DELIVERY_CONSTANTS_LUA                                                               \
    "local BUSY, ALONE = '" FLEET_STR(FLEET_DELIVERY_BUSY) "', '" FLEET_STR(                       \
        FLEET_DELIVERY_ALONE) "'\n"                                                                \
                              "local REPLAY, ASK = '" FLEET_STR(                                   \
                                  FLEET_DELIVERY_REPLAY) "', '" FLEET_STR(FLEET_DELIVERY_ASK) "'"  \
                                                                                              "\n"
#define FLEET_DELIVER_LUA                                                                          \
    FLEET_SEEN_LUA                                                                                 \
    FLEET_DELIVERY_CONSTANTS_LUA                                                                   \
    "local now, wid, ttl = ARGV[1], ARGV[2], ARGV[3]\n"                                            \
    "local out, e = {}, wid .. '@' .. now\n"                                                       \
    "local rec1 = '1 ' .. now .. ' ' .. now .. ' ' .. e\n"                                         \
    "local function alive(pool, w, t)\n"                                                           \
    "  local id, inc = w:match('^(.+)#(%x+)$')\n"                                                  \
    "  if not id then return false end\n"                                                          \
    "  local a = redis.call('HGET', pre .. 'pool:' .. pool .. ':active', id)\n"                    \
    "  local n, ms, ainc = (a or ''):match('^(%d+) (%d+) (%x+)$')\n"                               \
    "  return ainc == inc and tonumber(n) > 0 and t - tonumber(ms) < ACTIVE_STALE\n"               \
    "end\n"                                                                                        \
    "for i = 4, #ARGV, 7 do\n"                                                                     \
    "  local id, live = ARGV[i], ARGV[i+6]\n"                                                      \
    "  local d = pre .. 'delivery:' .. id\n"                                                       \
    "  if done_at(id, ARGV[i+4], ARGV[i+5]) then\n"                                                \
    "    if tagged and redis.call('EXISTS', pre .. 'task:' .. id .. ':x') == 1 then\n"             \
    "      out[#out+1] = REPLAY\n"                                                                 \
    "    else out[#out+1] = 0 end\n"                                                               \
    "  elseif redis.call('SET', d, rec1, 'NX', 'EX', ttl) then\n"                                  \
    "    out[#out+1] = 1\n"                                                                        \
    "  else\n"                                                                                     \
    "    local c, first, h = (redis.call('GET', d) or ''):match('^(%d+) (%d+) %d+ (.*)$')\n"       \
    "    c = tonumber(c) or 0\n"                                                                   \
    "    local max = tonumber(ARGV[i+1])\n"                                                        \
    "    local lw = h and h:match('([^ ]+)@%d+$')\n"                                               \
    "    local other = lw and lw ~= wid\n"                                                         \
    "    if other and live == '' and tagged then out[#out+1] = ASK\n"                              \
    "    elseif other and (live == '1' or (live == '' and alive(ARGV[i+2], lw, tonumber(now)))) "  \
    "then\n"                                                                                       \
    "      out[#out+1] = BUSY\n"                                                                   \
    "    elseif c >= max then out[#out+1] = -c\n"                                                  \
    "    elseif c + 1 >= max and ARGV[i+3] ~= '1' then out[#out+1] = ALONE\n"                      \
    "    else\n"                                                                                   \
    "      c = c + 1\n"                                                                            \
    "      if h then h = h .. ' ' .. e else h = e end\n"                                           \
    "      if c > 10 then h = h:match('[^ ]+ (.*)$') or h end\n"                                   \
    "      redis.call('SET', d, c .. ' ' .. (first or now) .. ' ' .. now .. ' ' .. h, 'EX', "      \
    "ttl)\n"                                                                                       \
    "      out[#out+1] = c\n"                                                                      \
    "    end\n"                                                                                    \
    "  end\n"                                                                                      \
    "end\n"                                                                                        \
    "return table.concat(out, ',')\n"

/*
** Stores a dead letter for operators. KEYS[1]: the prefix of the pool's
** slot. ARGV: now (Unix ms), task id, pool, the task envelope, a reason (""
** for none) and, in the tagged layout, the task's delivery record as the
** worker read it ("" for none; it is in the task's slot). Builds the
** record from mutirao:delivery:ID (the error: "worker W ended without recording an
** outcome (delivery N)" from the latest history entry, or the reason when
** given: a message a worker refused unrun, e.g. an unsigned envelope),
** HSETs it and the envelope in the pool's dead hashes and counts
** dead_lettered (with a reason: unauthenticated) once per stay there.
** Returns the record.
*/
#define FLEET_DEAD_LUA                                                                             \
    FLEET_CONSTANTS_LUA                                                                            \
    "local now, id, pool, env, why = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]\n"                \
    "if why == '' then why = nil end\n"                                                            \
    "local r = ARGV[6] or redis.call('GET', pre .. 'delivery:' .. id) or ''\n"                     \
    "local c, first, last, h = r:match('^(%d+) (%d+) (%d+) (.*)$')\n"                              \
    "c, h = c or '0', h or ''\n"                                                                   \
    "local w, err = h:match('([^ #]+)[^ ]*@[0-9]+$'), 'no outcome was recorded'\n"                 \
    "if w then\n"                                                                                  \
    "  err = 'worker ' .. w .. ' ended without recording an outcome (delivery ' .. c .. ')'\n"     \
    "end\n"                                                                                        \
    "if why then err = why end\n"                                                                  \
    "local rec = c .. ' ' .. (first or now) .. ' ' .. (last or now) .. ' ' .. now .. '\\n' .. h\n" \
    "  .. '\\n' .. err\n"                                                                          \
    "local k = pre .. 'pool:' .. pool .. ':dead'\n"                                                \
    "if redis.call('HSET', k, id, rec) == 1 then\n"                                                \
    "  redis.call('HINCRBY', pre .. 'pool:' .. pool .. ':stats',\n"                                \
    "    why and 'unauthenticated' or 'dead_lettered', 1)\n"                                       \
    "end\n"                                                                                        \
    "redis.call('HSET', k .. ':env', id, env)\n"                                                   \
    "redis.call('EXPIRE', k, POOL_IDLE_TTL)\n"                                                     \
    "redis.call('EXPIRE', k .. ':env', POOL_IDLE_TTL)\n"                                           \
    "return rec\n"

/*
** `mutirao dlq retry`, before it produces the stored envelope again. KEYS[1]:
** the prefix of the task's slot. ARGV: pool, task id, marker TTL s (0:
** none). If the task is a dead letter of the pool (the tagged layout
** cannot see the pool's slot: the caller checked it): its outcome, seen bit and delivery record go
*(so a worker runs it
** and records again), its submitted bit and (for producers before the
** bitmap) its mutirao:task:ID:q marker are set; returns 1, else 0.
*/
#define FLEET_DLQ_TAKE_LUA                                                                         \
    FLEET_SEEN_LUA                                                                                 \
    "local pool, id, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])\n"                                  \
    "if not tagged and redis.call('HEXISTS', pre .. 'pool:' .. pool .. ':dead', id) == 0 then\n"   \
    "  return 0\n"                                                                                 \
    "end\n"                                                                                        \
    "redis.call('DEL', pre .. 'task:' .. id, pre .. 'delivery:' .. id)\n"                          \
    "local sk, sb = seen(id)\n"                                                                    \
    "if sk then\n"                                                                                 \
    "  redis.call('SETBIT', sk, sb, 0)\n"                                                          \
    "  local q = pre .. 'sub:' .. string.sub(sk, #pre + 6)\n"                                      \
    "  redis.call('SETBIT', q, sb, 1)\n"                                                           \
    "  touch(q, ttl)\n"                                                                            \
    "end\n"                                                                                        \
    "if tagged then return 1 end\n"                                                                \
    "if ttl > 0 then redis.call('SET', pre .. 'task:' .. id .. ':q', '1', 'EX', ttl)\n"            \
    "else redis.call('SET', pre .. 'task:' .. id .. ':q', '1') end\n"                              \
    "return 1\n"

/*
** `mutirao dlq retry`, once Kafka has the envelope again, and `mutirao dlq
** drop`: the dead letter leaves the pool's dead hashes. KEYS[1]: the prefix
** of the pool's slot. ARGV: pool, task id,
** "retried" (the pool's submitted + 1) or "dropped". Returns 1 if it was
** there, else 0.
*/
#define FLEET_DLQ_REMOVE_LUA                                                                       \
    "local pre = KEYS[1]\n"                                                                        \
    "local k = pre .. 'pool:' .. ARGV[1] .. ':dead'\n"                                             \
    "local n = redis.call('HDEL', k, ARGV[2])\n"                                                   \
    "redis.call('HDEL', k .. ':env', ARGV[2])\n"                                                   \
    "if n == 1 and ARGV[3] == 'retried' then\n"                                                    \
    "  redis.call('HINCRBY', pre .. 'pool:' .. ARGV[1] .. ':stats', 'submitted', 1)\n"             \
    "end\n"                                                                                        \
    "return n\n"

/*
** The completions of a batch of task attempts, each idempotent by task id.
** ARGV[1] result TTL s (0: none), ARGV[2] notification list TTL s, ARGV[3]
** a completed task's info TTL s (task.info_ttl_s), then per
** task: id, pool, producer, "completed" or "failed", result record, the
** outcome kept by reference (mutirao:task:ID:out, same TTL; "" for none),
** its seen bitmap's key and bit (fleet_bit_of; "" "" for none), W (the
** count of WaitGroup changes), its mutirao:task:ID:info ("" for none),
** then W pairs (owner producer, 'W' element). The info is set with the
** record (a completed task's for ARGV[3] s, a failure's for the result TTL)
** or with a retry (the result TTL).
** A failed attempt with attempts left has the status "retry" instead, the
** next attempt's envelope for the record and its due Unix ms for the
** outcome by reference, and W = 0: unless the task is done, the envelope
** joins mutirao:retries (mutirao:retries:signed for a signed envelope)
** ("ID ENVELOPE", score due; counted once in the
** pool's retried), the delivery record goes (that attempt ended), and
** nothing is recorded or pushed; its element of the reply is 2.
** Per task: SETBIT of its seen bit (which answers the bit before): when it
** was clear, SET mutirao:task:ID (the seen bit, set here with the record,
** says "done": a record already there without it was written by someone
** else, e.g. a forger, and is replaced; an id without a seen bit uses SET
** NX); only when the record was set, an older producer's marker and the
** delivery record go, the pool's counter grows, the
** 'W' elements (each with NUL + "TASKID N" appended) and 'R' + record are
** pushed, and the changes of WaitGroups of the task's own producer are
** kept in mutirao:task:ID:w.
** The tagged layout (KEYS[1]: the prefix of the tasks' slot, one producer
** part): the worker added a retry to the retry set before this call, and
** the call counts it once (when it deletes the delivery record); a push to
** a list outside the slot (another producer's WaitGroup change, an id
** whose producer part is not its producer) sends all of that task's
** pushes, its own producer's 'W's and 'R' too, to the task's outbox
** mutirao:{T}:task:ID:x instead, pairs owner, element in order (so its own
** producer gets its outcome after the other producers got their changes,
** as in the flat layout, where they come in the same instant: a task
** that awaited it may end only then), and the task's element of the reply
** is 3: the worker pushes them
** (FLEET_NOTIFY_LUA per owner), deletes the outbox, and only then is the
** task finished (its offset committed).
** A failure's id is pushed to the head of its pool's recent failures
** (pre .. 'pool:NAME:failures', the newest 100 (FLEET_FAILURES_LAST is the last index kept),
*expiring
** with the result TTL, or a day without one): what `mutirao dashboard`
** lists (tagged: one list per producer's slot, found as pstats are).
** Returns an array: per task 1 (this call completed it), 3 (the same, with
** an outbox) or 0 (done before).
*/
#define FLEET_COMPLETE_LUA                                                                         \
    FLEET_SEEN_LUA                                                                                 \
    "local ttl, nttl, ittl = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])\n"                      \
    "local out, i, lists, order, counts, seens, dels = {}, 4, {}, {}, {}, {}, {}\n"                \
    "local xs, away\n"                                                                             \
    "local function push(p, e)\n"                                                                  \
    "  if tagged then\n"                                                                           \
    "    xs[#xs+1] = p xs[#xs+1] = e\n"                                                            \
    "    if p ~= tag then away = true end\n"                                                       \
    "    return\n"                                                                                 \
    "  end\n"                                                                                      \
    "  local v = lists[p]\n"                                                                       \
    "  if not v then v = {} lists[p] = v order[#order+1] = p end\n"                                \
    "  v[#v+1] = e\n"                                                                              \
    "end\n"                                                                                        \
    "while i <= #ARGV do\n"                                                                        \
    "  local id, pool, prod, st, rec = ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3], ARGV[i+4]\n"      \
    "  local blob, sk, sb, nw = ARGV[i+5], ARGV[i+6], ARGV[i+7], ARGV[i+8]\n"                      \
    "  if nw == '0' then nw = 0 else nw = tonumber(nw) end\n"                                      \
    "  local info = ARGV[i+9]\n"                                                                   \
    "  local k = pre .. 'task:' .. id\n"                                                           \
    "  if st == 'retry' then\n"                                                                    \
    "    if tagged then\n"                                                                         \
    "      if not done_at(id, sk, sb) and redis.call('DEL', pre .. 'delivery:' .. id) == 1 then\n" \
    "        count(counts, pool, 'retried', 1)\n"                                                  \
    "      end\n"                                                                                  \
    "    elseif not done_at(id, sk, sb) then\n"                                                    \
    "      local rk = '" FLEET_RETRIES_KEY "'\n"                                                   \
    "      if string.sub(rec, 1, 4) == 'MTE\\2' then rk = '" FLEET_RETRIES_SIGNED_KEY "' end\n"    \
    "      if redis.call('ZADD', rk, 'NX', blob, id .. ' ' .. rec) == 1 then\n"                    \
    "        count(counts, pool, 'retried', 1)\n"                                                  \
    "      end\n"                                                                                  \
    "      redis.call('DEL', pre .. 'delivery:' .. id)\n"                                          \
    "    end\n"                                                                                    \
    "    if #info > 0 then setx(k .. ':info', info, ttl) end\n"                                    \
    "    out[#out+1] = 2\n"                                                                        \
    "  else\n"                                                                                     \
    "  local ok = false\n"                                                                         \
    "  if sb ~= '' then\n"                                                                         \
    "    if redis.call('SETBIT', sk, sb, '1') == 0 then\n"                                         \
    "      seens[sk] = true\n"                                                                     \
    "      if ttl > 0 then ok = redis.call('SET', k, rec, 'EX', ARGV[1])\n"                        \
    "      else ok = redis.call('SET', k, rec) end\n"                                              \
    "    end\n"                                                                                    \
    "  elseif ttl > 0 then ok = redis.call('SET', k, rec, 'NX', 'EX', ARGV[1])\n"                  \
    "  else ok = redis.call('SET', k, rec, 'NX') end\n"                                            \
    "  if ok then\n"                                                                               \
    "    if tagged then xs, away = {}, false end\n"                                                \
    "    dels[#dels+1] = k .. ':q' dels[#dels+1] = pre .. 'delivery:' .. id\n"                     \
    "    count(counts, pool, st, 1)\n"                                                             \
    "    if st == 'failed' then\n"                                                                 \
    "      local fk = pre .. 'pool:' .. pool .. ':failures'\n"                                     \
    "      redis.call('LPUSH', fk, id)\n"                                                          \
    "      redis.call('LTRIM', fk, 0, " FLEET_FAILURES_LAST ")\n"                                  \
    "      redis.call('EXPIRE', fk, ttl > 0 and ttl or 86400)\n"                                   \
    "    end\n"                                                                                    \
    "    if #info > 0 then setx(k .. ':info', info, st == 'completed' and ittl or ttl) end\n"      \
    "    if #blob > 0 then setx(k .. ':out', blob, ttl) end\n"                                     \
    "    if nw > 0 then\n"                                                                         \
    "      local mine, per = {}, {}\n"                                                             \
    "      for w = 0, nw - 1 do local o = ARGV[i+10+2*w]; per[o] = (per[o] or 0) + 1 end\n"        \
    "      for w = 0, nw - 1 do\n"                                                                 \
    "        local o, e = ARGV[i+10+2*w], ARGV[i+11+2*w]\n"                                        \
    "        push(o, e .. '\\0' .. id .. ' ' .. per[o])\n"                                         \
    "        if o == prod then mine[#mine+1] = string.sub(e, 2) end\n"                             \
    "      end\n"                                                                                  \
    "      if #mine > 0 then setx(k .. ':w', table.concat(mine, '\\n'), ttl) end\n"                \
    "    end\n"                                                                                    \
    "    push(prod, 'R' .. rec)\n"                                                                 \
    "    if away then\n"                                                                           \
    "      redis.call('RPUSH', k .. ':x', unpack(xs))\n"                                           \
    "      redis.call('EXPIRE', k .. ':x', nttl)\n"                                                \
    "      out[#out+1] = 3\n"                                                                      \
    "    elseif not tagged then\n"                                                                 \
    "      out[#out+1] = 1\n"                                                                      \
    "    else\n"                                                                                   \
    "      for j = 1, #xs, 2 do\n"                                                                 \
    "        local v = lists[xs[j]]\n"                                                             \
    "        if not v then v = {} lists[xs[j]] = v order[#order+1] = xs[j] end\n"                  \
    "        v[#v+1] = xs[j+1]\n"                                                                  \
    "      end\n"                                                                                  \
    "      out[#out+1] = 1\n"                                                                      \
    "    end\n"                                                                                    \
    "  else\n"                                                                                     \
    "    out[#out+1] = 0\n"                                                                        \
    "  end\n"                                                                                      \
    "  end\n"                                                                                      \
    "  i = i + 10 + 2 * nw\n"                                                                      \
    "end\n"                                                                                        \
    "for _, p in ipairs(order) do\n"                                                               \
    "  local v, l = lists[p], pre .. 'done:' .. p\n"                                               \
    "  for j = 1, #v, 1000 do redis.call('RPUSH', l, unpack(v, j, math.min(j + 999, #v))) end\n"   \
    "  redis.call('EXPIRE', l, nttl)\n"                                                            \
    "end\n"                                                                                        \
    "for j = 1, #dels, 1000 do redis.call('DEL', unpack(dels, j, math.min(j + 999, #dels))) end\n" \
    "for sk in pairs(seens) do touch(sk, ttl) end\n"                                               \
    "hincr_all(counts)\n"                                                                          \
    "return out\n"

/*
** The tagged layout's notifications of a completed task for one producer
** outside the task's slot (its outbox, mutirao:{T}:task:ID:x). KEYS[1]:
** the prefix of producer O's slot; ARGV: O, notification list TTL s, the
** task id, then the elements. Pushes them to O's list unless this task's
** were pushed there before (mutirao:{O}:pushed:ID, kept as long as the
** list), so that a replay after a worker stopped midway pushes nothing
** twice. Returns 1 (pushed) or 0 (pushed before).
*/
#define FLEET_NOTIFY_LUA                                                                           \
    "local pre, o, nttl, id = KEYS[1], ARGV[1], ARGV[2], ARGV[3]\n"                                \
    "if not redis.call('SET', pre .. 'pushed:' .. id, '1', 'NX', 'EX', nttl) then return 0 end\n"  \
    "local l = pre .. 'done:' .. o\n"                                                              \
    "redis.call('RPUSH', l, unpack(ARGV, 4))\n"                                                    \
    "redis.call('EXPIRE', l, nttl)\n"                                                              \
    "return 1\n"

/*
** A worker's poll of mutirao:retries and mutirao:retries:signed. KEYS[1]:
** the prefix of their slot (fleet_key_retries). ARGV: now (Unix ms), lease
** (ms), the most to claim. Members due (score <= now) are claimed: their
** score becomes now + lease (another worker claims them once it passed:
** the claimer died); those whose task is done meanwhile go (flat layout:
** in the tagged one the task is in another slot, and the delivery script
** skips a done task once the claim produced it again). Returns the claimed
** members ("ID ENVELOPE"); the worker produces each envelope to its pool's
** topic and ZREMs the member once Kafka has it.
*/
#define FLEET_RETRY_CLAIM_LUA                                                                      \
    FLEET_SEEN_LUA                                                                                 \
    "local now, lease, max = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])\n"            \
    "local out = {}\n"                                                                             \
    "for _, k in ipairs({pre .. 'retries', pre .. 'retries:signed'}) do\n"                         \
    "  local due = redis.call('ZRANGEBYSCORE', k, '-inf', now, 'LIMIT', 0, max - #out)\n"          \
    "  for _, m in ipairs(due) do\n"                                                               \
    "    local id = string.match(m, '^(%S+) ')\n"                                                  \
    "    if not id or (not tagged and done(id)) then redis.call('ZREM', k, m)\n"                   \
    "    else\n"                                                                                   \
    "      redis.call('ZADD', k, 'XX', now + lease, m)\n"                                          \
    "      out[#out+1] = m\n"                                                                      \
    "    end\n"                                                                                    \
    "  end\n"                                                                                      \
    "  if #out >= max then break end\n"                                                            \
    "end\n"                                                                                        \
    "return out\n"

/*
** Submits' bookkeeping, batched. ARGV[1] TTL s of the submitted bitmaps (0:
** none), then per task: pool, its submitted bitmap's key and bit
** (fleet_bit_of; "" "" for none). Per task, HINCRBY of the pool's
** "submitted" (one per pool and call) and its bit in mutirao:sub:P:N, which
** says "submitted" to the producer's reconciliation as long as the seen
** bit is not set; the pools' hashes live on (flat layout: in the tagged
** one they are in the pools' slots, and the producer refreshes them with
** its entry in their :producers). KEYS[1]: the prefix of the producer's
** slot.
*/
#define FLEET_SUBMIT_LUA                                                                           \
    FLEET_SEEN_LUA                                                                                 \
    "local ttl, counts, subs = tonumber(ARGV[1]), {}, {}\n"                                        \
    "for i = 2, #ARGV, 3 do\n"                                                                     \
    "  count(counts, ARGV[i], 'submitted', 1)\n"                                                   \
    "  local k = ARGV[i + 1]\n"                                                                    \
    "  if ARGV[i + 2] ~= '' then redis.call('SETBIT', k, ARGV[i + 2], '1') subs[k] = true end\n"   \
    "end\n"                                                                                        \
    "for k in pairs(subs) do touch(k, ttl) end\n"                                                  \
    "hincr_all(counts)\n"                                                                          \
    "if not tagged then\n"                                                                         \
    "  for p in pairs(counts) do redis.call('EXPIRE', pre .. 'pool:' .. p, POOL_IDLE_TTL) end\n"   \
    "end\n"                                                                                        \
    "return 1\n"

/*
** Re-submitted tasks (lua/fleet/fleet_reconcile.c): ARGV[1] TTL s (0:
** none), then per task its submitted bitmap's key and bit (fleet_bit_of):
** the bit is set again (Redis may have lost it). No counter changes: the
** task was counted once. KEYS[1]: the prefix of the tasks' slot.
*/
#define FLEET_REMARK_LUA                                                                           \
    FLEET_SEEN_LUA                                                                                 \
    "local ttl, subs = tonumber(ARGV[1]), {}\n"                                                    \
    "for i = 2, #ARGV, 2 do\n"                                                                     \
    "  if ARGV[i + 1] ~= '' then\n"                                                                \
    "    redis.call('SETBIT', ARGV[i], ARGV[i + 1], 1)\n"                                          \
    "    subs[ARGV[i]] = true\n"                                                                   \
    "  end\n"                                                                                      \
    "end\n"                                                                                        \
    "for k in pairs(subs) do touch(k, ttl) end\n"                                                  \
    "return 1\n"

/*
** What the producer's reconciliation reads of its pending tasks
** (lua/fleet/fleet_reconcile.c), and an await of another producer's task.
** ARGV: per task, its id, the keys of its seen and submitted bitmaps and its
** bit (fleet_lookup_args). Per task, two elements: the result record and
** the mutirao:task:ID:w changes ("" when none); or, without a record, 0
** (neither record nor bit: Redis lost the task, or nobody submitted it), 1
** (its submitted bit, or the mutirao:task:ID:q marker of producers before
** the bitmap: queued or running) or 2 (its seen bit: completed, and its
** record already deleted by an await), then "". KEYS[1]: the prefix of the
** tasks' slot.
*/
#define FLEET_LOOKUP_LUA                                                                           \
    "local out, pre = {}, KEYS[1]\n"                                                               \
    "for i = 1, #ARGV, 4 do\n"                                                                     \
    "  local k, sk, qk, b = pre .. 'task:' .. ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]\n"    \
    "  local rec = redis.call('GET', k)\n"                                                         \
    "  if rec then\n"                                                                              \
    "    out[#out+1] = rec\n"                                                                      \
    "    out[#out+1] = redis.call('GET', k .. ':w') or ''\n"                                       \
    "  else\n"                                                                                     \
    "    local st = 0\n"                                                                           \
    "    if b ~= '' and redis.call('GETBIT', sk, b) == 1 then st = 2\n"                            \
    "    elseif (b ~= '' and redis.call('GETBIT', qk, b) == 1) or\n"                               \
    "      redis.call('EXISTS', k .. ':q') == 1 then st = 1 end\n"                                 \
    "    out[#out+1] = st\n"                                                                       \
    "    out[#out+1] = ''\n"                                                                       \
    "  end\n"                                                                                      \
    "end\n"                                                                                        \
    "return out\n"
/*
** The layout (see the top of this file) is one per process, like its Redis:
** flat until set. fleet_keys_use_url sets it from a redis.url (tagged for
** redis+cluster:// and rediss+cluster://) and returns whether it is tagged.
*/
void fleet_keys_set_tagged(int tagged);
int fleet_keys_tagged(void);
int fleet_keys_use_url(const char *url);
/* The length of the tag of task id (len bytes): its producer part for an id
 * PRODUCER:SEQ[:HEX], else the whole id. The tag is id's first bytes. */
size_t fleet_id_tag(const char *id, size_t len);
/* The prefix of the keys of tag (taglen bytes) into out (FLEET_KEY_MAX
 * bytes): "mutirao:" flat, "mutirao:{TAG}:" tagged; the KEYS[1] of a script
 * call in that slot. Its length (0: too long). */
size_t fleet_prefix(char *out, const char *tag, size_t taglen);
/* The same for the slot of task id, of producer's keys, of a pool's keys,
 * of the retry sets. */
size_t fleet_prefix_id(char *out, const char *id);
size_t fleet_prefix_producer(char *out, const char *producer);
size_t fleet_prefix_pool(char *out, const char *pool);
size_t fleet_prefix_retries(char *out);

/* Each writes the key into out (FLEET_KEY_MAX bytes) and returns its length. */
size_t fleet_key_pool(char *out, const char *pool);
/* the pool's counters counted in its slot (flat: all of them) */
size_t fleet_key_stats(char *out, const char *pool);
/* the pool's counters of producer's tasks: flat, the pool's :stats;
 * tagged, mutirao:{P}:stats:NAME */
size_t fleet_key_pstats(char *out, const char *pool, const char *producer);
size_t fleet_key_producers(char *out, const char *pool); /* tagged: who counts in pstats */
/* the pool's recent failed task ids (FLEET_COMPLETE_LUA); tagged: in producer's slot */
size_t fleet_key_failures(char *out, const char *pool, const char *producer);
size_t fleet_key_retries(char *out, int is_signed); /* the retry sets */
size_t fleet_key_active(char *out, const char *pool);
size_t fleet_key_task(char *out, const char *id);
size_t fleet_key_task_queued(char *out, const char *id);
size_t fleet_key_task_info(char *out, const char *id);  /* what `mutirao task` shows */
size_t fleet_key_worker(char *out, const char *worker); /* a worker's registry entry */
size_t fleet_key_workers(char *out);                    /* the live workers, by last seen */
size_t fleet_key_task_wg(char *out, const char *id);
size_t fleet_key_task_in(char *out, const char *id);  /* a task's payload by reference */
size_t fleet_key_task_out(char *out, const char *id); /* a result's payload by reference */
size_t fleet_key_notify(char *out, const char *producer);
size_t fleet_key_delivery(char *out, const char *id);
size_t fleet_key_dead(char *out, const char *pool);     /* the dead letters' records */
size_t fleet_key_dead_env(char *out, const char *pool); /* their envelopes */
size_t fleet_key_outbox(char *out, const char *id);     /* tagged: a completion's other pushes */

/*
** A task's bit in the fleet's bitmaps, computed by the client so that the
** scripts do not parse ids: FLEET_SEEN_LUA's seen(id) in C (an id
** PRODUCER:SEQ:HEX or PRODUCER:SEQ, SEQ at most 1e15). seen: the key of
** its seen bitmap (mutirao:seen:P:N), sub: of its submitted bitmap
** (mutirao:sub:P:N), bit: S % FLEET_SEEN_SHARD in decimal.
*/
typedef struct fleet_bit {
    char seen[FLEET_KEY_MAX], sub[FLEET_KEY_MAX], bit[8];
    size_t seen_len, sub_len, bit_len;
} fleet_bit;
/* Fills b and returns 0; -1 for an id of another form (no bit: its
 * completion rests on its result key alone) or one too long. */
int fleet_bit_of(const char *id, size_t len, fleet_bit *b);

/*
** The bits of the n tasks of one script call, compactly: a batch's tasks
** share few bitmaps (4,096 consecutive tasks of a producer per bitmap), so
** a key equal to the task before's is not stored again. Per task i:
** seen[i], sub[i] (its keys, "" for an id without bits) and bit[i] ("" for
** none).
*/
typedef struct fleet_bits {
    int n;
    const char **seen, **sub;
    char (*bit)[8];
    char **own; /* the distinct keys, freed with the set */
    int nown;
} fleet_bits;
/* Room for n tasks; 0, or -1 without memory. */
int fleet_bits_init(fleet_bits *s, int n);
/* Task i's bits from its id; 0, or -1 without memory (its keys are then ""). */
int fleet_bits_set(fleet_bits *s, int i, const char *id, size_t len);
void fleet_bits_free(fleet_bits *s);

/* FLEET_LOOKUP_LUA's four arguments for task i of s into argv, pointing
 * into id and s. */
void fleet_lookup_args(const char *id, const fleet_bits *s, int i, const char **argv);

/* The keys a task may have besides its result (fleet_task_keys' which) */
#define FLEET_TK_Q 1   /* mutirao:task:ID:q: deleted by the completion; for another's task */
#define FLEET_TK_W 2   /* :w: only a task that carries its producer's WaitGroups */
#define FLEET_TK_IN 4  /* :in: its arguments by reference */
#define FLEET_TK_OUT 8 /* :out: its result by reference */
#define FLEET_TK_ALL 15
/* The keys of task id that go once its outcome was read: its result and
 * those of which (FLEET_TK_*) it may have, at most FLEET_TASK_KEYS (the
 * queued marker, the WaitGroup changes, the payloads by reference; naming
 * a key it cannot have costs Redis a lookup per task): written into
 * out[i] (FLEET_KEY_MAX bytes each), lengths into len[i]. Returns the
 * count. */
int fleet_task_keys(const char *id, unsigned which, char out[][FLEET_KEY_MAX], size_t *len);

#endif
