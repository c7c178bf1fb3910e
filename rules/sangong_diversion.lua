-- sangong_diversion (orange): 疑似挪用三公经费.
--
-- Two cases, one hit per voucher (`key` names which):
--   "code": econ_class is a 三公 code (params.codes_list, default
--           etc/lists/sangong_codes.txt) and the indicator paying it lacks
--           the `sangong` flag.  An unknown indicator is left to
--           unknown_indicator.
--   "word": the purpose contains a 三公 word (params.words_list, default
--           etc/lists/sangong_words.txt: 接待/宴请/招待/车辆) while the
--           econ_class is not a 三公 code.
local function sorted_keys(set)
  local out = {}
  for k in pairs(set) do out[#out + 1] = k end
  table.sort(out)
  return out
end

-- A state's lists never change (ctx.list), so each is sorted once.
local sorted_lists = {}
local function sorted_list(ctx, name)
  local words = sorted_lists[name]
  if words == nil then
    words = sorted_keys(ctx.list(name))
    sorted_lists[name] = words
  end
  return words
end

return {
  id = "sangong_diversion",
  name = "疑似挪用三公经费",
  level = "orange",
  on = { "voucher.created" },
  params = { codes_list = "sangong_codes", words_list = "sangong_words" },
  description = "三公经济分类从无三公标识的指标支付，或摘要含接待、宴请、招待、车辆而经济分类非三公科目。",
  check = function(v, ctx)
    local codes = ctx.list(ctx.params.codes_list)
    local econ = v.econ_class or ""
    if codes[econ] then
      local ind = ctx.indicator(v.indicator_id)
      if ind == nil or (ind.flags and ind.flags.sangong) then
        return nil
      end
      return {
        message = ("三公经济分类 %s 从无三公经费标识的指标 %s 支付 %s 元"):format(econ,
          v.indicator_id, ctx.yuan(v.amount)),
        details = { amount = v.amount, econ_class = econ },
        key = "code",
      }
    end
    local purpose = v.purpose or ""
    -- one C call finds whether any word is there (the usual answer: none)
    if ctx.find_word(purpose, ctx.params.words_list) == nil then
      return nil
    end
    local found = {}
    for _, w in ipairs(sorted_list(ctx, ctx.params.words_list)) do
      if ctx.contains(purpose, w) then found[#found + 1] = w end
    end
    if #found == 0 then
      return nil
    end
    return {
      message = ("支付摘要“%s”含“%s”，但经济分类 %s 不是三公科目，金额 %s 元"):format(purpose,
        table.concat(found, "、"), econ, ctx.yuan(v.amount)),
      details = { amount = v.amount, econ_class = econ },
      key = "word",
    }
  end,
}
