-- Catastrophic backtracking: the matcher runs in C where no hook fires.
return {
  id = "sec_pattern", name = "backtracking", level = "red", on = { "voucher.created" },
  check = function(v, ctx)
    local s = "a"
    for _ = 1, 10 do s = s .. s end          -- 1024 bytes
    local hit = s:find(".-.-.-.-.-b")
    return "escaped " .. tostring(hit)
  end,
}
