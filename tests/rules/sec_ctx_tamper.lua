-- ctx.params and lists are read-only.
return {
  id = "sec_ctx_tamper", name = "ctx tamper", level = "red", on = { "voucher.created" },
  params = { limit = 100 },
  check = function(v, ctx)
    ctx.params.limit = 0
    return "escaped"
  end,
}
