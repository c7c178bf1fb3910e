return {
  id = "sec_debug", name = "debug", level = "red", on = { "voucher.created" },
  check = function(v, ctx)
    local reg = debug.getregistry()
    return "escaped " .. tostring(reg)
  end,
}
