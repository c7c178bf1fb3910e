-- q4_prepayment (yellow): 四季度预付、预存、充值.
--
-- Fires when the voucher is created in months params.from_month..12
-- (business zone; default October-December), econ_class is one of
-- params.econ_classes (会议费 30215, 公务接待费 30217, 公务用车运行维护费
-- 30231), the purpose contains a word of params.words_list (default
-- etc/lists/prepay_words.txt: 预付/预存/充值) and amount > params.min.
return {
  id = "q4_prepayment",
  name = "四季度预付预存",
  level = "yellow",
  on = { "voucher.created" },
  params = { from_month = 10, econ_classes = { "30215", "30217", "30231" },
             words_list = "prepay_words", min = 1000000 },
  when = { amount = { gt = "min" }, econ_class = { one_of = "econ_classes" } },
  description = "10–12 月会议费、公务接待费、公务用车运行维护费以预付、预存、充值名义支付且金额超过门槛（默认 10000 元）。",
  check = function(v, ctx)
    local p = ctx.params
    if v.amount <= p.min then
      return nil
    end
    local t = ctx.time(ctx.now())
    if t.month < p.from_month then
      return nil
    end
    local econ_ok = false
    for _, c in ipairs(p.econ_classes) do
      if c == v.econ_class then econ_ok = true end
    end
    if not econ_ok then
      return nil
    end
    local words = {}
    for w in pairs(ctx.list(p.words_list)) do words[#words + 1] = w end
    table.sort(words)
    local purpose = v.purpose or ""
    for _, w in ipairs(words) do
      if ctx.contains(purpose, w) then
        return {
          message = ("%d 月以“%s”名义支付经济分类 %s %s 元，超过 %s 元（摘要“%s”）"):format(
            t.month, w, v.econ_class, ctx.yuan(v.amount), ctx.yuan(p.min), purpose),
          details = { amount = v.amount, min = p.min, month = t.month },
        }
      end
    end
    return nil
  end,
}
