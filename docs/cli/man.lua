-- pandoc filter: docs/cli/*.md -> man pages (cmake/Manpages.cmake).
--
-- The pages are written for reading on the web first; this turns their
-- conventions into man's:
--   * the page's "# deltasend(1)" heading (the title, with
--     --shift-heading-level-by=-1) -> .TH DELTASEND 1;
--   * section headings in capitals (.SH SYNOPSIS);
--   * lists whose items all read "`code` ... — text" (options, exit
--     statuses, files, variables) -> tagged paragraphs (.TP): the part
--     before the " — " is the tag;
--   * links to other pages: their text only (man has no links); to the
--     project's other documents: the text plus where the package installs
--     them (/usr/share/doc/deltasync/).

local stringify = pandoc.utils.stringify

function Meta(meta)
  if meta.title then
    local title = stringify(meta.title):gsub("%(%d%)$", "")
    meta.title = pandoc.MetaInlines({ pandoc.Str(title:upper()) })
  end
  return meta
end

function Header(header)
  if header.level == 1 then
    return pandoc.Header(1, { pandoc.Str(stringify(header.content):upper()) }, header.attr)
  end
end

function Link(link)
  local target = link.target
  if target:match("^%a[%w+.-]*:") then return nil end -- http:, https:, file:
  local doc = target:match("^%.%./([%w_.-]+%.md)$") or target:match("^%.%./%.%./([%w_.-]+%.md)$")
  if doc then
    local path = pandoc.Str("/usr/share/doc/deltasync/" .. doc)
    if stringify(link.content) == doc then return { path } end
    local out = link.content
    out:insert(pandoc.Space())
    out:insert(pandoc.Str("(" .. path.text .. ")"))
    return out
  end
  return link.content
end

-- The index of the first " — " separator in a list of inlines, or nil.
local function dash_at(inlines)
  for i, inline in ipairs(inlines) do
    if inline.t == "Str" and inline.text == "—" then return i end
  end
  return nil
end

function BulletList(list)
  local items = {}
  for _, item in ipairs(list.content) do
    local first = item[1]
    if not first or (first.t ~= "Plain" and first.t ~= "Para") then return nil end
    local inlines = first.content
    if #inlines == 0 or inlines[1].t ~= "Code" then return nil end
    local dash = dash_at(inlines)
    if not dash then return nil end
    local term, text = pandoc.List(), pandoc.List()
    for i, inline in ipairs(inlines) do
      if i < dash then term:insert(inline) elseif i > dash then text:insert(inline) end
    end
    -- Trim the spaces around the dash.
    while #term > 0 and (term[#term].t == "Space" or term[#term].t == "SoftBreak") do term:remove() end
    while #text > 0 and (text[1].t == "Space" or text[1].t == "SoftBreak") do text:remove(1) end
    local body = pandoc.List({ pandoc.Para(text) })
    for i = 2, #item do body:insert(item[i]) end
    table.insert(items, { term, { body } })
  end
  return pandoc.DefinitionList(items)
end
