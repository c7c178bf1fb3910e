-- utf8.len scans in C; called in a loop it must still hit the budget.
return {
  id = "sec_scan_loop", name = "scan loop", level = "red", on = { "voucher.created" },
  check = function(v, ctx)
    local s = "0123456789abcdef"
    for _ = 1, 16 do s = s .. s end          -- 1 MiB
    while true do utf8.len(s); ctx.contains(s, "z") end
  end,
}
