-- reduction_refused (red): 指标调减或调剂被拒绝.
--
-- Computed from the indicator as it stands before the operation:
--   adjust (amount < 0):  allocated + amount < frozen + paid
--   transfer (amount > 0): the SOURCE (from_indicator_id) has
--                          allocated - amount < frozen + paid
-- i.e. the operation would make `available` negative, so the ledger refuses
-- it and nothing changes.  For a transfer the hit's subject is the source
-- indicator (the one that would go below zero).  An unknown indicator is
-- not judged here.  A positive adjust is never refused.
return {
  id = "reduction_refused",
  name = "指标调减被拒绝",
  level = "red",
  on = { "indicator.adjust", "indicator.transfer" },
  params = {},
  description = "调减或调剂将使指标低于已冻结与已支付之和，操作被拒绝，指标不变。",
  check = function(v, ctx)
    local op = ctx.event
    local target, reduce
    if op == "indicator.adjust" then
      if v.amount >= 0 then return nil end
      target, reduce = v.indicator_id, -v.amount
    elseif op == "indicator.transfer" then
      if v.amount <= 0 then return nil end
      target, reduce = v.from_indicator_id, v.amount
    else
      return nil
    end
    local ind = ctx.indicator(target)
    if ind == nil then
      return nil
    end
    local used = ind.frozen + ind.paid
    local after = ind.allocated - reduce
    if after >= used then
      return nil
    end
    local what = op == "indicator.adjust" and "调减" or ("调剂至 " .. (v.indicator_id or ""))
    local hit = {
      message = ("指标 %s %s %s 元被拒绝：下达 %s 元减后为 %s 元，低于已冻结 %s 元与已支付 %s 元之和 %s 元（文号 %s）"):format(
        target, what, ctx.yuan(reduce), ctx.yuan(ind.allocated), ctx.yuan(after),
        ctx.yuan(ind.frozen), ctx.yuan(ind.paid), ctx.yuan(used), v.doc_no or ""),
      details = { amount = reduce, allocated = ind.allocated, frozen = ind.frozen, paid = ind.paid,
                  available = ind.available, shortfall = used - after },
    }
    if op == "indicator.transfer" then
      hit.subject = { kind = "indicator", id = target }
      hit.unit = ind.unit_code
    end
    return hit
  end,
}
