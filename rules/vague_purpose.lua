-- vague_purpose (yellow): 支付摘要不规范.
--
-- Fires when the purpose (trimmed) is empty, shorter than params.min_chars
-- characters (UTF-8 characters, default 4), or consists only of generic
-- words (params.words_list, default etc/lists/generic_purpose.txt: 支付,
-- 付款, 其他, 费用, 货款) once white space and punctuation are removed, e.g.
-- "其他费用" or "支付货款".  `key` names the case (empty / short / generic).
-- The purpose is free text of any length: the one Lua pattern below only
-- runs once it is known to be at most 200 bytes.
local PUNCT = { "，", "。", "、", "；", "：", "（", "）", "“", "”", "　", "！", "？" }

-- ASCII white space and punctuation, as byte ranges (no locale): 9-13,
-- 32-47, 58-64, 91-96, 123-126.
local ASCII_SPACE_PUNCT = "[\t-\r !-/:-@[-`{-~]"

local function is_space(b)
  return b == 32 or (b >= 9 and b <= 13)
end

local function trim(s)
  local first, last = s:byte(1), s:byte(-1)
  if first ~= nil and first > 32 and last > 32 then
    return s -- nothing to trim (the usual case)
  end
  local i, j = 1, #s
  while i <= j and is_space(s:byte(i)) do i = i + 1 end
  while j >= i and is_space(s:byte(j)) do j = j - 1 end
  return s:sub(i, j)
end

local function remove_plain(s, w)
  if w == "" or not string.find(s, w, 1, true) then return s end
  local out, i = {}, 1
  while true do
    local a, b = string.find(s, w, i, true)
    if a == nil then break end
    out[#out + 1] = s:sub(i, a - 1)
    i = b + 1
  end
  out[#out + 1] = s:sub(i)
  return table.concat(out)
end

local function drop_ascii_punct(s)
  return (string.gsub(s, ASCII_SPACE_PUNCT, ""))
end

local function sorted_keys(set)
  local out = {}
  for k in pairs(set) do out[#out + 1] = k end
  -- longest first so that a word containing another is removed whole
  table.sort(out, function(a, b) if #a ~= #b then return #a > #b end return a < b end)
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

-- Removing punctuation and words never creates characters, and on valid
-- UTF-8 every removal takes whole characters.  So the purpose can only end
-- up empty if each of its characters is ASCII white space or punctuation or
-- occurs in PUNCT or in a word of the list: a purpose with any other
-- character (almost every real one) is decided without the removals.
-- alphabets[list name] = set of code points, or false when a word is not
-- valid UTF-8 (then the removals always run).
local function add_chars(a, list)
  for _, w in ipairs(list) do
    if not a or not utf8.len(w) then
      return false
    end
    for _, c in utf8.codes(w) do a[c] = true end
  end
  return a
end

local alphabets = {}
local function alphabet(ctx, name)
  local a = alphabets[name]
  if a == nil then
    a = add_chars(add_chars({}, PUNCT), sorted_list(ctx, name))
    alphabets[name] = a
  end
  return a
end

local function is_ascii_space_punct(c)
  return (c >= 9 and c <= 13) or (c >= 32 and c <= 47) or (c >= 58 and c <= 64)
    or (c >= 91 and c <= 96) or (c >= 123 and c <= 126)
end

-- Whether s may consist only of removable characters (see above).
local function may_be_generic(ctx, s)
  local a = alphabet(ctx, ctx.params.words_list)
  if not a or not utf8.len(s) then
    return true
  end
  for _, c in utf8.codes(s) do
    if not a[c] and not is_ascii_space_punct(c) then
      return false
    end
  end
  return true
end

-- The details of a hit (made only for one).
local function hit_details(v, n, ctx)
  return { amount = v.amount, chars = n, min_chars = ctx.params.min_chars }
end

return {
  id = "vague_purpose",
  name = "支付摘要不规范",
  level = "yellow",
  on = { "voucher.created" },
  params = { min_chars = 4, words_list = "generic_purpose" },
  description = "支付摘要为空、少于最少字数（默认 4 字）或只有“支付、付款、其他、费用、货款”等泛化词。",
  check = function(v, ctx)
    local s = trim(v.purpose or "")
    local n = ctx.utf8len(s) or 0
    if s == "" then
      return { message = ("支付摘要为空，支付金额 %s 元"):format(ctx.yuan(v.amount)),
               details = hit_details(v, n, ctx), key = "empty" }
    end
    if n < ctx.params.min_chars then
      return { message = ("支付摘要“%s”仅 %d 字，少于 %d 字，支付金额 %s 元"):format(s, n,
                 ctx.params.min_chars, ctx.yuan(v.amount)),
               details = hit_details(v, n, ctx), key = "short" }
    end
    if #s > 200 then
      return nil -- a long text is not "only a generic word"
    end
    if not may_be_generic(ctx, s) then
      return nil
    end
    local rest = drop_ascii_punct(s)
    for _, p in ipairs(PUNCT) do rest = remove_plain(rest, p) end
    for _, w in ipairs(sorted_list(ctx, ctx.params.words_list)) do
      rest = remove_plain(rest, w)
    end
    if rest == "" then
      return { message = ("支付摘要“%s”只有泛化用语，未说明用途，支付金额 %s 元"):format(s,
                 ctx.yuan(v.amount)),
               details = hit_details(v, n, ctx), key = "generic" }
    end
    return nil
  end,
}
