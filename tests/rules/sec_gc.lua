-- A finalizer runs with hooks off: it must not be installable.
return {
  id = "sec_gc", name = "__gc", level = "red", on = { "voucher.created" },
  check = function(v, ctx)
    setmetatable({}, { __gc = function() while true do end end })
    return "escaped"
  end,
}
