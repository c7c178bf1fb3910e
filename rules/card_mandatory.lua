-- card_mandatory (yellow): 公务卡强制结算目录内支出未使用公务卡.
--
-- Fires when econ_class is on the mandatory list (params.codes_list,
-- default etc/lists/card_mandatory.txt), the payment is in cash or to an
-- individual, and amount <= params.cap (above the cap other settlement is
-- allowed).  Reading: a payment settled by official card (settle_method
-- "card") is the compliant path even when the payee is the card-holding
-- individual (公务卡报销还款), so it never fires.
return {
  id = "card_mandatory",
  name = "应使用公务卡结算",
  level = "yellow",
  on = { "voucher.created" },
  params = { codes_list = "card_mandatory", cap = 5000000 },
  when = { econ_class = { list = "codes_list" }, amount = { le = "cap" } },
  description = "公务卡强制结算目录内的支出以现金或向个人支付，且金额不超过上限（默认 50000 元）。",
  check = function(v, ctx)
    local codes = ctx.list(ctx.params.codes_list)
    if v.econ_class == nil or not codes[v.econ_class] then
      return nil
    end
    if v.settle_method == "card" or v.amount > ctx.params.cap then
      return nil
    end
    local how
    if v.settle_method == "cash" then
      how = "现金支付"
    elseif v.payee_type == "individual" then
      how = "支付给个人"
    else
      return nil
    end
    return {
      message = ("经济分类 %s 属公务卡强制结算目录，%s %s 元（上限 %s 元内应使用公务卡）"):format(
        v.econ_class, how, ctx.yuan(v.amount), ctx.yuan(ctx.params.cap)),
      details = { amount = v.amount, cap = ctx.params.cap, econ_class = v.econ_class },
    }
  end,
}
