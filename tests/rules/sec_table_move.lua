-- table.move loops in C over the whole range, nils included.
return {
  id = "sec_table_move", name = "table.move", level = "red", on = { "voucher.created" },
  check = function(v, ctx)
    table.move({}, 1, math.maxinteger - 1, 2)
    return "escaped"
  end,
}
