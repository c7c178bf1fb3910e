-- catchall_econ_class (red): 使用"其他支出"类兜底经济分类.
--
-- The codes live in the named list (params.codes_list, default
-- etc/lists/catchall_econ.txt: 39999, 30299, 31099); a region overrides
-- the list file or points the param at another list.
return {
  id = "catchall_econ_class",
  name = "使用兜底经济分类",
  level = "red",
  on = { "voucher.created" },
  params = { codes_list = "catchall_econ" },
  when = { econ_class = { list = "codes_list" } },
  description = "经济分类为兜底的“其他”科目（默认 39999、30299、31099）。",
  check = function(v, ctx)
    local codes = ctx.list(ctx.params.codes_list)
    if v.econ_class == nil or not codes[v.econ_class] then
      return nil
    end
    return {
      message = ("经济分类 %s 为兜底“其他”科目，支付金额 %s 元，用途“%s”"):format(v.econ_class,
        ctx.yuan(v.amount), v.purpose or ""),
      details = { amount = v.amount, econ_class = v.econ_class },
    }
  end,
}
