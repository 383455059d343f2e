/*
** fleet_keys.h: what the fleet keeps in Redis, shared by the producer side
** (lua/fleet/fleet_pool.c) and the worker (worker/): key names, the two Lua
** scripts and the notification records. docs/ARCHITECTURE.md explains the
** life of a task; this file is the byte-level contract.
**
** Keys (NAME = pool, ID = task id, P = producer id):
**   mutirao:pool:NAME         hash: workers, queue, block (pool_create's
**                             options; workers caps each worker process)
**   mutirao:pool:NAME:stats   hash: submitted, completed, failed
**   mutirao:pool:NAME:active  hash: worker id -> "COUNT MS" (tasks running on
**                             that worker, Unix ms of the report); reports
**                             older than FLEET_ACTIVE_STALE_MS are ignored
**   mutirao:task:ID           the result record (envelope_result); its
**                             presence means "completed": set once (NX)
**   mutirao:task:ID:q         "1" while submitted and not yet completed
**   mutirao:task:ID:w         the task's changes of its producer's WaitGroups,
**                             "WGID DELTA" lines (only when it made some; same
**                             life as mutirao:task:ID): what the producer
**                             applies when it finds the record without its
**                             notifications (lua/fleet/fleet_reconcile.h)
**   mutirao:done:P            list of notifications for producer P
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

/*
** The completions of a batch of task attempts, each idempotent by task id.
** ARGV[1] result TTL s (0: none), ARGV[2] notification list TTL s, then per
** task: id, pool, producer, "completed" or "failed", result record, W (the
** count of WaitGroup changes), then W pairs (owner producer, 'W' element).
** Per task: SET mutirao:task:ID NX; only when it was set, the marker goes,
** the pool's counter grows, the 'W' elements (each with NUL + "TASKID N"
** appended) and 'R' + record are pushed, and the changes of WaitGroups of
** the task's own producer are kept in mutirao:task:ID:w.
** Returns an array: per task 1 (this call completed it) or 0 (done before).
*/
#define FLEET_COMPLETE_LUA                                                                         \
    "local ttl, nttl = tonumber(ARGV[1]), ARGV[2]\n"                                               \
    "local out, i, touched = {}, 3, {}\n"                                                          \
    "local function push(p, e)\n"                                                                  \
    "  local l = 'mutirao:done:' .. p\n"                                                           \
    "  redis.call('RPUSH', l, e)\n"                                                                \
    "  touched[l] = true\n"                                                                        \
    "end\n"                                                                                        \
    "while i <= #ARGV do\n"                                                                        \
    "  local id, pool, prod, st, rec = ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3], ARGV[i+4]\n"      \
    "  local nw = tonumber(ARGV[i+5])\n"                                                           \
    "  local k, ok = 'mutirao:task:' .. id\n"                                                      \
    "  if ttl > 0 then ok = redis.call('SET', k, rec, 'NX', 'EX', ttl)\n"                          \
    "  else ok = redis.call('SET', k, rec, 'NX') end\n"                                            \
    "  if ok then\n"                                                                               \
    "    redis.call('DEL', k .. ':q')\n"                                                           \
    "    redis.call('HINCRBY', 'mutirao:pool:' .. pool .. ':stats', st, 1)\n"                      \
    "    local mine, per = {}, {}\n"                                                               \
    "    for w = 0, nw - 1 do local o = ARGV[i+6+2*w]; per[o] = (per[o] or 0) + 1 end\n"           \
    "    for w = 0, nw - 1 do\n"                                                                   \
    "      local o, e = ARGV[i+6+2*w], ARGV[i+7+2*w]\n"                                            \
    "      push(o, e .. '\\0' .. id .. ' ' .. per[o])\n"                                           \
    "      if o == prod then mine[#mine+1] = string.sub(e, 2) end\n"                               \
    "    end\n"                                                                                    \
    "    if #mine > 0 then\n"                                                                      \
    "      local v = table.concat(mine, '\\n')\n"                                                  \
    "      if ttl > 0 then redis.call('SET', k .. ':w', v, 'EX', ttl)\n"                           \
    "      else redis.call('SET', k .. ':w', v) end\n"                                             \
    "    end\n"                                                                                    \
    "    push(prod, 'R' .. rec)\n"                                                                 \
    "    out[#out+1] = 1\n"                                                                        \
    "  else\n"                                                                                     \
    "    out[#out+1] = 0\n"                                                                        \
    "  end\n"                                                                                      \
    "  i = i + 6 + 2 * nw\n"                                                                       \
    "end\n"                                                                                        \
    "for l in pairs(touched) do redis.call('EXPIRE', l, nttl) end\n"                               \
    "return out\n"

/*
** Submits' bookkeeping, batched. ARGV[1] TTL s of the markers (0: none),
** then pairs (pool, task id): per pair, HINCRBY of the pool's "submitted"
** and the mutirao:task:ID:q marker, unless the task already completed (a
** very fast worker). Keys are built here, so they follow the names above.
*/
#define FLEET_SUBMIT_LUA                                                                           \
    "local ttl = tonumber(ARGV[1])\n"                                                              \
    "for i = 2, #ARGV, 2 do\n"                                                                     \
    "  redis.call('HINCRBY', 'mutirao:pool:' .. ARGV[i] .. ':stats', 'submitted', 1)\n"            \
    "  local t = 'mutirao:task:' .. ARGV[i + 1]\n"                                                 \
    "  if redis.call('EXISTS', t) == 0 then\n"                                                     \
    "    if ttl > 0 then redis.call('SET', t .. ':q', '1', 'EX', ttl)\n"                           \
    "    else redis.call('SET', t .. ':q', '1') end\n"                                             \
    "  end\n"                                                                                      \
    "end\n"                                                                                        \
    "return 1\n"

/*
** Markers of re-submitted tasks (lua/fleet/fleet_reconcile.c): ARGV[1] TTL s
** (0: none), then task ids: per id, the mutirao:task:ID:q marker unless the
** task already completed. No counter changes: the task was counted once.
*/
#define FLEET_REMARK_LUA                                                                           \
    "local ttl = tonumber(ARGV[1])\n"                                                              \
    "for i = 2, #ARGV do\n"                                                                        \
    "  local t = 'mutirao:task:' .. ARGV[i]\n"                                                     \
    "  if redis.call('EXISTS', t) == 0 then\n"                                                     \
    "    if ttl > 0 then redis.call('SET', t .. ':q', '1', 'EX', ttl)\n"                           \
    "    else redis.call('SET', t .. ':q', '1') end\n"                                             \
    "  end\n"                                                                                      \
    "end\n"                                                                                        \
    "return 1\n"

/* Each writes the key into out (FLEET_KEY_MAX bytes) and returns its length. */
size_t fleet_key_pool(char *out, const char *pool);
size_t fleet_key_stats(char *out, const char *pool);
size_t fleet_key_active(char *out, const char *pool);
size_t fleet_key_task(char *out, const char *id);
size_t fleet_key_task_queued(char *out, const char *id);
size_t fleet_key_task_wg(char *out, const char *id);
size_t fleet_key_notify(char *out, const char *producer);

#endif
