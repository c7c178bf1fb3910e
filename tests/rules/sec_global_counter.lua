-- Globals written during a call must not outlive it: always "calls 1".
return {
  id = "sec_global_counter", name = "global counter", level = "blue", on = { "voucher.created" },
  check = function(v, ctx)
    calls = (calls or 0) + 1
    return "calls " .. calls
  end,
}
