-- class_mismatch (red): 支付的功能分类、经济分类、资金性质或项目与指标不符.
--
-- Reading: func_class and econ_class are always compared (exact codes);
-- fund_type and project_code only when the voucher gives them (present and
-- not empty), as contract §2.1 makes them optional.  An indicator without a
-- project_code does not match a voucher that names one.  Unknown indicators
-- are left to unknown_indicator.  All differing fields go into one hit.
local FIELDS = {
  { "func_class", "功能分类", true },
  { "econ_class", "经济分类", true },
  { "fund_type", "资金性质", false },
  { "project_code", "项目编码", false },
}

return {
  id = "class_mismatch",
  name = "支付科目与指标不符",
  level = "red",
  on = { "voucher.created" },
  params = {},
  description = "凭证的功能分类、经济分类、资金性质或项目编码（凭证给出时）与指标不一致。",
  check = function(v, ctx)
    local ind = ctx.indicator(v.indicator_id)
    if ind == nil then
      return nil
    end
    local diffs, details -- made at the first difference
    for i = 1, #FIELDS do -- a numeric for: ipairs is a C call per field
      local f = FIELDS[i]
      local field, label, always = f[1], f[2], f[3]
      local mine = v[field]
      if always or (mine ~= nil and mine ~= "") then
        local theirs = ind[field] or ""
        mine = mine or ""
        if mine ~= theirs then
          if diffs == nil then
            diffs, details = {}, { amount = v.amount }
          end
          diffs[#diffs + 1] = ("%s %s（指标为 %s）"):format(label, mine,
            theirs ~= "" and theirs or "空")
          details[field] = mine
          details["indicator_" .. field] = theirs
        end
      end
    end
    if diffs == nil then
      return nil
    end
    return {
      message = ("凭证与指标 %s 不符：%s，支付金额 %s 元"):format(v.indicator_id,
        table.concat(diffs, "；"), ctx.yuan(v.amount)),
      details = details,
    }
  end,
}
