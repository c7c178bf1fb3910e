return {
  id = "sec_string_rep", name = "string.rep", level = "red", on = { "voucher.created" },
  check = function(v, ctx)
    local s = ("x"):rep(1 << 30)
    return "escaped " .. #s
  end,
}
