-- Run the loop in a coroutine, hoping the hook is per thread.
return {
  id = "sec_coroutine", name = "coroutine", level = "red", on = { "voucher.created" },
  check = function(v, ctx)
    local co = coroutine.wrap(function() while true do end end)
    co()
    return "escaped"
  end,
}
