-- What a VM keeps of the pool tasks it submitted: at most 100,000 finished
-- outcomes, the oldest forgotten first; the ids of the others stay found
-- while older ones are forgotten again and again.
local G = require("goroutine")
local slow = (tonumber(os.getenv("MUTIRAO_TIME_FACTOR")) or 1) > 1

describe("kept outcomes", function()
    it("keeps at most 100,000 per VM, the oldest forgotten first", function()
        if slow then
            pending("200,000 tasks: too slow under valgrind")
            return
        end
        assert.is_true(G.pool_create("taskbook_keep", { workers = 64, queue = 4096 }))
        local first = G.pool_submit("taskbook_keep", function() return "first" end)
        assert.are.same({ true, "first" }, { G.await(first) })
        local ids = {}
        for round = 1, 2 do
            for i = 1, 100000 do
                ids[i] = G.pool_submit("taskbook_keep", function(x) return x end, round * i)
            end
            G.pool_wait("taskbook_keep")
            local ok, err = G.await(first)
            assert.is_false(ok)
            assert.matches("unknown task id", err)
            for _, i in ipairs({ 1, 2, 5000, 99999, 100000 }) do
                assert.are.same({ true, round * i }, { G.await(ids[i]) })
            end
            first = ids[1]
        end
        local st = G.pool_stats("taskbook_keep")
        assert.are.equal(200001, st.completed)
        assert.is_true(G.pool_close("taskbook_keep"))
    end)

    it("answers ids that cannot be task ids without echoing them whole", function()
        local ok, err = G.await("ab\0cd-1")
        assert.is_false(ok)
        assert.are.equal("unknown task id: 'ab?cd-1' (not a task id)", err)
        ok, err = G.await(string.rep("x", 100000))
        assert.is_false(ok)
        assert.is_true(#err < 100, "a short message")
        assert.matches("^unknown task id: 'x+%.%.%.' %(not a task id%)$", err)
        ok, err = G.await("")
        assert.is_false(ok)
        assert.matches("not a task id", err)
    end)
end)
