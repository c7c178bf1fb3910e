-- A well-behaved rule: must keep working next to the hostile ones.
return {
  id = "good_rule", name = "good", level = "blue", on = { "voucher.created" },
  check = function(v, ctx)
    return ("good %s"):format(ctx.yuan(v.amount))
  end,
}
