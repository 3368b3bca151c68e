// Well-formedness warnings while editing. JSON is checked by the browser's own
// parser. YAML gets a lint, not a parser: it catches the mistakes that break
// configuration files most often (tabs in indentation, inconsistent
// indentation, unclosed quotes and brackets, a key given twice at one level)
// and stays quiet about everything else, so a clean lint is not a promise
// that a YAML parser will accept the text.

// guessFormat(text) -> "json" | "yaml" | "text".
export function guessFormat(text) {
  const t = text.trim();
  if (t === "") return "text";
  if (t.startsWith("{") || t.startsWith("[")) return "json";
  const lines = t.split("\n").filter((l) => l.trim() && !l.trim().startsWith("#"));
  if (t.startsWith("---")) return "yaml";
  const yamlish = lines.filter((l) => /^\s*(- |[^\s:#][^:#]*:(\s|$))/.test(l)).length;
  return lines.length > 0 && yamlish / lines.length >= 0.5 ? "yaml" : "text";
}

export function prettyJson(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return null;
  }
}

function lineCol(text, pos) {
  const before = text.slice(0, pos);
  const line = before.split("\n").length;
  return { line, col: pos - before.lastIndexOf("\n") };
}

// Where JSON text stops being well-formed: the offset of the first byte a
// strict parser refuses, for browsers whose JSON.parse message names none.
function jsonErrorOffset(t) {
  let i = 0;
  const ws = () => {
    while (i < t.length && " \t\n\r".includes(t[i])) i++;
  };
  const fail = () => {
    throw i;
  };
  const lit = (w) => (t.startsWith(w, i) ? (i += w.length) : fail());
  function str() {
    i++;
    while (i < t.length && t[i] !== '"') {
      if (t[i] === "\\") i++;
      else if (t.charCodeAt(i) < 0x20) fail();
      i++;
    }
    if (i >= t.length) fail();
    i++;
  }
  function value() {
    ws();
    const c = t[i];
    if (c === "{") {
      i++;
      ws();
      if (t[i] === "}") return i++;
      for (;;) {
        ws();
        if (t[i] !== '"') fail();
        str();
        ws();
        if (t[i] !== ":") fail();
        i++;
        value();
        ws();
        if (t[i] === ",") i++;
        else if (t[i] === "}") return i++;
        else fail();
      }
    } else if (c === "[") {
      i++;
      ws();
      if (t[i] === "]") return i++;
      for (;;) {
        value();
        ws();
        if (t[i] === ",") i++;
        else if (t[i] === "]") return i++;
        else fail();
      }
    } else if (c === '"') str();
    else if (c === "t") lit("true");
    else if (c === "f") lit("false");
    else if (c === "n") lit("null");
    else {
      const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(t.slice(i));
      if (!m) fail();
      i += m[0].length;
    }
  }
  try {
    value();
    ws();
    return i < t.length ? i : null;
  } catch (at) {
    return Math.min(at, t.length);
  }
}

// lintJson(text) -> [{line, col, message}] (empty when well-formed).
export function lintJson(text) {
  if (text.trim() === "") return [{ line: 1, col: 1, message: "Empty: not a JSON document." }];
  try {
    JSON.parse(text);
    return [];
  } catch (e) {
    const msg = String(e.message);
    let line = null;
    let col = null;
    const lc = /line (\d+) column (\d+)/.exec(msg);
    const at = /position (\d+)/.exec(msg);
    if (lc) {
      line = Number(lc[1]);
      col = Number(lc[2]);
    } else if (at) {
      ({ line, col } = lineCol(text, Number(at[1])));
    } else {
      const off = jsonErrorOffset(text);
      if (off !== null) ({ line, col } = lineCol(text, off));
    }
    return [{ line, col, message: msg.replace(/^JSON\.parse: /, "").replace(/ in JSON at position \d+.*$/, "") }];
  }
}

const closer = { "[": "]", "{": "}" };

// Strips a trailing comment and the contents of quoted scalars from one line,
// reporting an unclosed quote. Returns {code, quoteError}.
function scanLine(line) {
  let code = "";
  let quote = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote) {
      if (quote === "'" && c === "'" && line[i + 1] === "'") {
        i++; // '' is an escaped quote inside single quotes
      } else if (quote === '"' && c === "\\") {
        i++;
      } else if (c === quote) {
        quote = null;
        code += "_";
      }
      continue;
    }
    if (c === "#" && (i === 0 || /\s/.test(line[i - 1]))) break;
    // A quote opens a quoted scalar only where a scalar may start.
    if ((c === '"' || c === "'") && (i === 0 || /[\s:\[{,\-?]/.test(line[i - 1]))) {
      quote = c;
      continue;
    }
    code += c;
  }
  return { code, quoteError: quote };
}

// lintYaml(text) -> [{line, col, message}].
export function lintYaml(text) {
  const out = [];
  const lines = text.split("\n");
  // One entry per open block level: its indentation and the keys seen there.
  let levels = [{ indent: 0, keys: new Map() }];
  let unit = 0; // the first indentation step seen; others should be multiples
  const brackets = []; // open flow brackets: {ch, line, col}
  let blockScalar = -1; // inside a | or > block scalar indented more than this
  for (let n = 0; n < lines.length; n++) {
    const raw = lines[n];
    const ln = n + 1;
    const indentMatch = /^[ \t]*/.exec(raw)[0];
    const body = raw.slice(indentMatch.length);
    if (blockScalar >= 0) {
      if (body === "" || indentMatch.replace(/\t/g, "    ").length > blockScalar) continue;
      blockScalar = -1;
    }
    if (body === "" || body.startsWith("#")) continue;
    if (body === "---" || body === "...") {
      levels = [{ indent: 0, keys: new Map() }];
      continue;
    }
    if (indentMatch.includes("\t")) {
      out.push({ line: ln, col: indentMatch.indexOf("\t") + 1, message: "Tab in indentation: YAML indents with spaces only." });
      continue;
    }
    const indent = indentMatch.length;
    const { code, quoteError } = scanLine(body);
    if (quoteError && brackets.length === 0) {
      out.push({ line: ln, col: indent + 1, message: `Unclosed ${quoteError === '"' ? "double" : "single"} quote.` });
    }
    // Flow brackets may span lines; track them across the document.
    let c0 = indent;
    for (const ch of code) {
      c0++;
      if (ch === "[" || ch === "{") brackets.push({ ch, line: ln, col: c0 });
      else if (ch === "]" || ch === "}") {
        const top = brackets.pop();
        if (!top) out.push({ line: ln, col: c0, message: `Unmatched '${ch}'.` });
        else if (closer[top.ch] !== ch)
          out.push({ line: ln, col: c0, message: `'${ch}' closes the '${top.ch}' opened on line ${top.line}.` });
      }
    }
    if (brackets.length > 0 && !(code.includes("[") || code.includes("{"))) continue; // inside a flow collection
    // Indentation: within the levels already open, or one new deeper level.
    const top = levels[levels.length - 1];
    if (indent > top.indent) {
      const step = indent - top.indent;
      if (unit === 0) unit = step;
      else if (step % unit !== 0 && !/^- /.test(body))
        out.push({ line: ln, col: 1, message: `Indentation of ${indent} is not a multiple of ${unit}, the indentation used above.` });
      levels.push({ indent, keys: new Map() });
    } else if (indent < top.indent) {
      while (levels.length > 1 && levels[levels.length - 1].indent > indent) levels.pop();
      if (levels[levels.length - 1].indent !== indent)
        out.push({ line: ln, col: 1, message: `Indentation of ${indent} matches no enclosing level.` });
    }
    const level = levels[levels.length - 1];
    // A sequence item starts a new mapping: its keys are a level of their own.
    let rest = code;
    if (/^-(\s|$)/.test(rest)) {
      level.keys = new Map();
      rest = rest.replace(/^-\s*/, "");
      const inner = indent + (body.length - body.replace(/^-\s*/, "").length);
      if (rest) {
        levels.push({ indent: inner, keys: new Map() });
      }
    }
    const km = /^([^\s\[\]{},][^:]*?|_)\s*:(\s|$)/.exec(rest);
    if (km) {
      const cur = levels[levels.length - 1];
      const key = km[1] === "_" ? body.replace(/^-\s*/, "").split(":")[0].trim() : km[1].trim();
      if (cur.keys.has(key)) {
        out.push({ line: ln, col: indent + 1, message: `Duplicate key "${key}" (first on line ${cur.keys.get(key)}).` });
      } else {
        cur.keys.set(key, ln);
      }
      if (/:\s*[|>][-+0-9]*\s*$/.test(code)) blockScalar = indent;
    }
  }
  for (const b of brackets) out.push({ line: b.line, col: b.col, message: `'${b.ch}' is never closed.` });
  return out;
}

export function lint(text, format) {
  if (format === "json") return lintJson(text);
  if (format === "yaml") return lintYaml(text);
  return [];
}
