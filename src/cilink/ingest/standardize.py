"""Value standardization as polars expressions: names, SSN, ZIP, phone, e-mail, address, codes, numbers.

Every function maps a String expression to its standardized form and is idempotent (applying it to its
own output changes nothing), so staged data can be re-standardized safely. Functions that can fail
return the value and a mask of rows where the input was unusable; validate.py decides what a failure
means (flag and null, or quarantine). The forms follow docs/internals.md ("Standardized forms").
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from cilink.schemas import RaceEthnicity

SUFFIXES = ("jr", "sr", "ii", "iii", "iv")
_SUFFIX_ALIASES = {"JR": "JR", "JUNIOR": "JR", "SR": "SR", "SENIOR": "SR", "II": "II", "2ND": "II",
                   "III": "III", "3RD": "III", "IV": "IV", "4TH": "IV"}
#: letters NFKD does not decompose into ASCII + accent
_FOLD_FROM = ["ß", "ø", "ł", "æ", "œ", "đ", "ð", "þ", "ı", "ŀ", "ŧ", "ħ"]
_FOLD_TO = ["ss", "o", "l", "ae", "oe", "d", "d", "th", "i", "l", "t", "h"]

#: famous or structurally fake SSNs that show up as placeholders in real data
SSN_PLACEHOLDERS = ["123456789", "987654321", "078051120", "219099999", "012345678", "234567890"]
_SSN_REPEATS = [str(d) * 9 for d in range(10)]


#: Materializes an intermediate expression as a column and returns a reference to it. polars' common
#: subexpression elimination does not reach nested repeats, so functions that reuse an intermediate
#: result (an SSN's digits, a parsed date) hand it to ``mat``; validate.py computes those columns in
#: stages. The default (identity) keeps every function usable as a plain expression.
Mat = Callable[[pl.Expr], pl.Expr]


def same(e: pl.Expr) -> pl.Expr:
    return e


def _null_if_empty(s: pl.Expr) -> pl.Expr:
    return pl.when(s.str.len_bytes() > 0).then(s).otherwise(None)


def ascii_fold(s: pl.Expr) -> pl.Expr:
    """NFKC, lower-case, accents stripped (NFKD minus combining marks), special letters folded."""
    s = s.str.normalize("NFKC").str.to_lowercase().str.replace_many(_FOLD_FROM, _FOLD_TO)
    return s.str.normalize("NFKD").str.replace_all(r"\p{M}+", "")


def _transliterate_batch(values: pl.Series) -> pl.Series:
    from anyascii import anyascii

    mask = values.str.contains(r"[^\x00-\x7f]").fill_null(False)
    if not mask.any():
        return values
    return pl.Series(values.name, [anyascii(v).lower() if m else v for v, m in zip(values.to_list(), mask.to_list(),
                                                                                   strict=True)], dtype=pl.String)


def transliterate(s: pl.Expr) -> pl.Expr:
    """Letters outside Latin as ASCII (anyascii): "Оксана" → "oksana", "李小龙" → "lixiaolong", "Σοφία" → "sofia".

    Only values that still hold non-ASCII after folding go through Python; names repeat, and ingest calls
    this once per distinct value.
    """
    return s.map_batches(_transliterate_batch, return_dtype=pl.String)


def name(s: pl.Expr) -> pl.Expr:
    """Names: lower-case ASCII letters, single spaces (apostrophes and dots dropped, other marks → space).

    Non-Latin scripts are transliterated, not dropped (a Cyrillic or Chinese name used to become null).
    Example: "O'Brien-Smith, JR." → "obrien smith jr"; "José" → "jose"; "=HYPERLINK(…)" stays text.
    """
    s = transliterate(ascii_fold(s)).str.replace_all(r"['’`´.]", "").str.replace_all(r"[^a-z]+", " ").str.strip_chars()
    return _null_if_empty(s)


def split_suffix(last: pl.Expr, mat: Mat = same) -> tuple[pl.Expr, pl.Expr]:
    """(last name without a trailing generational suffix, suffix upper-case or null): "smith jr" → smith, JR."""
    parts = mat(last.str.extract_groups(rf"^(?<rest>.*\S)\s+(?<sfx>{'|'.join(SUFFIXES)})$"))
    rest = parts.struct.field("rest")
    return pl.coalesce(rest, last), parts.struct.field("sfx").str.to_uppercase()


def suffix(s: pl.Expr, mat: Mat = same) -> tuple[pl.Expr, pl.Expr]:
    """A name_suffix cell → (JR/SR/II/III/IV or null, mask of values that are no known suffix)."""
    key = s.str.to_uppercase().str.replace_all(r"[\s.,]", "")
    value = mat(key.replace_strict(_SUFFIX_ALIASES, default=None, return_dtype=pl.String))
    return value, s.is_not_null() & value.is_null()


def ssn(s: pl.Expr, mat: Mat = same) -> tuple[pl.Expr, pl.Expr, pl.Expr, pl.Expr]:
    """An SSN cell → (ssn or null, last4 or null, invalid mask, masked mask).

    Invalid: area 000/666/9xx, group 00, serial 0000, one digit repeated, known placeholders, not 9
    digits. Masked (XXX-XX-1234, ***-**-1234): no SSN, but the last four digits are kept.
    Leading zeros lost by Excel (7–8 bare digits) are restored.
    """
    compact = mat(s.str.replace_all(r"[\s\-.]", ""))
    masked = compact.str.contains(r"[Xx*#]")
    digits = mat(pl.when(compact.str.contains(r"^\d{7,8}$")).then(compact.str.zfill(9)).otherwise(compact))
    well_formed = digits.str.contains(r"^\d{9}$")
    area, group, serial = digits.str.slice(0, 3), digits.str.slice(3, 2), digits.str.slice(5, 4)
    valid = (well_formed & ~masked & ~area.is_in(["000", "666"]) & ~area.str.starts_with("9")
             & (group != "00") & (serial != "0000") & ~digits.is_in(_SSN_REPEATS + SSN_PLACEHOLDERS))
    valid = mat(valid)
    value = pl.when(valid).then(digits).otherwise(None)
    masked_last4 = compact.str.extract(r"^[Xx*#]+(\d{4})$", 1)
    masked_last4 = pl.when(masked_last4 != "0000").then(masked_last4).otherwise(None)
    last4 = pl.when(valid).then(serial).when(masked).then(masked_last4).otherwise(None)
    present = s.is_not_null()
    return value, last4, present & ~masked & ~valid, present & masked


def shared_id(s: pl.Expr) -> pl.Expr:
    """A shared identifier: upper-case letters and digits, separators and spaces dropped (``12-345 a`` →
    ``12345A``); null when nothing is left."""
    return _null_if_empty(s.str.to_uppercase().str.replace_all(r"[^0-9A-Z]", ""))


def ssn_last4(s: pl.Expr, mat: Mat = same) -> tuple[pl.Expr, pl.Expr]:
    """A last-four cell → (4 digits or null, invalid mask); 1–3 bare digits regain Excel's lost zeros."""
    compact = mat(s.str.replace_all(r"[\s\-.Xx*#]", ""))
    digits = mat(pl.when(compact.str.contains(r"^\d{1,3}$")).then(compact.str.zfill(4)).otherwise(compact))
    valid = mat(digits.str.contains(r"^\d{4}$") & (digits != "0000"))
    return pl.when(valid).then(digits).otherwise(None), s.is_not_null() & ~valid


def zip5(s: pl.Expr, mat: Mat = same) -> tuple[pl.Expr, pl.Expr]:
    """A ZIP cell → (5 digits or null, unusable mask).

    "01040", "01040-1234", "010401234" → "01040"; numbers that lost leading zeros ("1040", "1040.0",
    "10401234") are padded back; anything else (and "00000") is unusable.
    """
    z = mat(s.str.replace(r"\.0+$", "").str.replace_all(r"\s", ""))
    five = mat(
        pl.when(z.str.contains(r"^\d{5}$")).then(z)
        .when(z.str.contains(r"^\d{5}-?\d{4}$")).then(z.str.slice(0, 5))
        .when(z.str.contains(r"^\d{3,4}$")).then(z.str.zfill(5))
        .when(z.str.contains(r"^\d{8}$")).then(z.str.zfill(9).str.slice(0, 5))
        .when(z.str.contains(r"^\d{4}-\d{4}$")).then(z.str.slice(0, 4).str.zfill(5))
        .otherwise(None)
    )
    five = mat(pl.when(five != "00000").then(five).otherwise(None))
    return five, s.is_not_null() & five.is_null()


def phone(s: pl.Expr, mat: Mat = same) -> tuple[pl.Expr, pl.Expr]:
    """A phone cell → (10 digits or null, unusable mask); extensions dropped, leading 1 removed."""
    base = s.str.to_lowercase().str.replace(r"(x|ext|extension)\.?\s*\d+\s*$", "")
    d = mat(base.str.replace_all(r"\D", ""))
    d = mat(pl.when((d.str.len_bytes() == 11) & d.str.starts_with("1")).then(d.str.slice(1)).otherwise(d))
    valid = mat(d.str.contains(r"^[2-9]\d{2}[2-9]\d{6}$") & ~d.is_in([str(i) * 10 for i in range(10)]))
    value = pl.when(valid).then(d).otherwise(None)
    return value, s.is_not_null() & ~valid


def email(s: pl.Expr, mat: Mat = same) -> tuple[pl.Expr, pl.Expr]:
    """An e-mail cell → (lower-case address or null, invalid mask)."""
    e = mat(s.str.normalize("NFKC").str.strip_chars().str.to_lowercase())
    valid = e.str.contains(r"^[a-z0-9._%+'\-]+@[a-z0-9\-]+(?:\.[a-z0-9\-]+)*\.[a-z]{2,}$")
    return pl.when(valid).then(e).otherwise(None), s.is_not_null() & ~valid


def address_line(s: pl.Expr) -> pl.Expr:
    """Street, unit, city: accents stripped, upper-case, dots and commas dropped, single spaces."""
    a = ascii_fold(s).str.to_uppercase().str.replace_all(r"[.,]", "").str.replace_all(r"\s+", " ")
    return _null_if_empty(a.str.strip_chars())


def text(s: pl.Expr) -> pl.Expr:
    """Free text and identifiers: whitespace collapsed, nothing else touched (text is data)."""
    return _null_if_empty(s.str.replace_all(r"\s+", " ").str.strip_chars())


STATES = {
    "ALABAMA": "AL", "ALASKA": "AK", "ARIZONA": "AZ", "ARKANSAS": "AR", "CALIFORNIA": "CA", "COLORADO": "CO",
    "CONNECTICUT": "CT", "DELAWARE": "DE", "DISTRICT OF COLUMBIA": "DC", "FLORIDA": "FL", "GEORGIA": "GA",
    "HAWAII": "HI", "IDAHO": "ID", "ILLINOIS": "IL", "INDIANA": "IN", "IOWA": "IA", "KANSAS": "KS",
    "KENTUCKY": "KY", "LOUISIANA": "LA", "MAINE": "ME", "MARYLAND": "MD", "MASSACHUSETTS": "MA",
    "MICHIGAN": "MI", "MINNESOTA": "MN", "MISSISSIPPI": "MS", "MISSOURI": "MO", "MONTANA": "MT",
    "NEBRASKA": "NE", "NEVADA": "NV", "NEW HAMPSHIRE": "NH", "NEW JERSEY": "NJ", "NEW MEXICO": "NM",
    "NEW YORK": "NY", "NORTH CAROLINA": "NC", "NORTH DAKOTA": "ND", "OHIO": "OH", "OKLAHOMA": "OK",
    "OREGON": "OR", "PENNSYLVANIA": "PA", "RHODE ISLAND": "RI", "SOUTH CAROLINA": "SC", "SOUTH DAKOTA": "SD",
    "TENNESSEE": "TN", "TEXAS": "TX", "UTAH": "UT", "VERMONT": "VT", "VIRGINIA": "VA", "WASHINGTON": "WA",
    "WEST VIRGINIA": "WV", "WISCONSIN": "WI", "WYOMING": "WY", "PUERTO RICO": "PR", "GUAM": "GU",
    "VIRGIN ISLANDS": "VI", "AMERICAN SAMOA": "AS", "NORTHERN MARIANA ISLANDS": "MP",
}


def state(s: pl.Expr, mat: Mat = same) -> tuple[pl.Expr, pl.Expr]:
    """A state cell → (USPS two-letter code or null, unknown-code mask); full names are recognised."""
    key = address_line(s)
    codes = set(STATES.values())
    table = {**{c: c for c in codes}, **STATES}
    value = mat(key.replace_strict(table, default=None, return_dtype=pl.String))
    return value, s.is_not_null() & value.is_null()


_SEX = {"F": "F", "FEMALE": "F", "WOMAN": "F", "GIRL": "F", "M": "M", "MALE": "M", "MAN": "M", "BOY": "M",
        "X": "X", "NONBINARY": "X", "NON BINARY": "X"}
#: answers that mean "not known"; they become null without a data-quality flag
_UNKNOWN = {"U", "UNK", "UNKNOWN", "NOT REPORTED", "NOT KNOWN", "DECLINED", "REFUSED", "PREFER NOT TO SAY",
            "PREFER NOT TO ANSWER", "NONE", "NA", "N A", "NULL"}


def _code_key(s: pl.Expr) -> pl.Expr:
    return ascii_fold(s).str.to_uppercase().str.replace_all(r"[^A-Z0-9]+", " ").str.strip_chars()


def sex(s: pl.Expr, mat: Mat = same) -> tuple[pl.Expr, pl.Expr]:
    """A sex cell (after the partner's code list) → (F/M/X or null, unmapped mask)."""
    key = mat(_code_key(s))
    value = mat(key.replace_strict(_SEX, default=None, return_dtype=pl.String))
    return value, s.is_not_null() & value.is_null() & ~key.is_in(list(_UNKNOWN))


_GRADES = {"PK": "PK", "PREK": "PK", "PRE K": "PK", "P": "PK", "PS": "PK", "PRESCHOOL": "PK",
           "K": "K", "KG": "K", "KF": "K", "KH": "K", "KINDERGARTEN": "K", "0": "K", "00": "K",
           **{str(i): str(i) for i in range(1, 13)}, **{f"{i:02d}": str(i) for i in range(1, 13)}}


def code(s: pl.Expr, allowed: tuple[str, ...], aliases: dict[str, str] | None = None,
         mat: Mat = same) -> tuple[pl.Expr, pl.Expr]:
    """A closed-set code → (allowed value or null, unmapped mask); matched case- and punctuation-blind."""
    key = mat(_code_key(s))
    table = {" ".join(a.upper().replace("_", " ").split()): a for a in allowed}
    table.update(aliases or {})
    value = mat(key.replace_strict(table, default=None, return_dtype=pl.String))
    return value, s.is_not_null() & value.is_null() & ~key.is_in(list(_UNKNOWN))


def grade_level(s: pl.Expr, allowed: tuple[str, ...], mat: Mat = same) -> tuple[pl.Expr, pl.Expr]:
    """Grades: PK, K, 1–12 (also "01", "KG", "Pre-K" …)."""
    return code(s, allowed, _GRADES, mat)


_RACE_LABELS = {
    RaceEthnicity.AIAN: ["american indian or alaska native", "american indian alaska native",
                         "american indian", "alaska native", "native american", "aian"],
    RaceEthnicity.ASIAN: ["asian", "asian american"],
    RaceEthnicity.BLACK: ["black or african american", "black african american", "black", "african american"],
    RaceEthnicity.HISPANIC: ["hispanic or latino", "hispanic latino", "hispanic", "latino", "latina", "latinx",
                             "latine", "hispanic latina e o", "hispanic latinaeo", "hispanic latinao"],
    RaceEthnicity.MENA: ["middle eastern or north african", "middle eastern north african", "middle eastern",
                         "north african", "mena"],
    RaceEthnicity.NHPI: ["native hawaiian or other pacific islander", "native hawaiian or pacific islander",
                         "native hawaiian pacific islander", "native hawaiian", "pacific islander", "nhpi"],
    RaceEthnicity.WHITE: ["white", "caucasian"],
}
_NONE_TOKEN = "\x00none"
_UNMAPPED_TOKEN = "\x00unmapped"


def _race_key(e: pl.Expr) -> pl.Expr:
    return ascii_fold(e).str.replace_all(r"[^a-z0-9]+", " ").str.strip_chars()


def race_ethnicity(s: pl.Expr, codes: dict[str, str] | None = None, mat: Mat = same) -> tuple[pl.Expr, pl.Expr]:
    """A multi-valued race/ethnicity cell ("White; Hispanic or Latino") → (sorted list of RaceEthnicity
    values or null, mask of cells with a token that maps to no category). Separators: ; and |.
    The partner's codes (e.g. "1" = "white") apply to each token.
    """
    table: dict[str, str] = {}
    for value, labels in _RACE_LABELS.items():
        for label in [*labels, value.value.replace("_", " ")]:
            table[label] = value.value
    for unknown in _UNKNOWN:
        table[unknown.lower()] = _NONE_TOKEN
    partner = {" ".join(k.casefold().split()): v for k, v in (codes or {}).items()}
    tokens = s.str.replace_all(r"\|", ";").str.split(";")

    def one(e: pl.Expr) -> pl.Expr:
        raw = e.str.strip_chars()
        recoded = raw.str.to_lowercase().str.replace_all(r"\s+", " ").replace_strict(partner, default=raw) \
            if partner else raw
        return _race_key(recoded).replace_strict(table, default=_UNMAPPED_TOKEN, return_dtype=pl.String)

    mapped = mat(tokens.list.eval(pl.element().filter(pl.element().str.strip_chars() != ""))
                 .list.eval(one(pl.element())))
    unmapped = mapped.list.contains(_UNMAPPED_TOKEN).fill_null(False)
    values = mat(mapped.list.eval(pl.element().filter(~pl.element().str.starts_with("\x00"))).list.unique()
                 .list.sort())
    return pl.when(values.list.len() > 0).then(values).otherwise(None), unmapped


def school_year(s: pl.Expr) -> pl.Expr:
    """School years as YYYY-YY: "2024-2025", "2024/25", "2024–25" → "2024-25" (other text unchanged)."""
    t = s.str.replace_all(r"\s", "").str.replace_all(r"[/–—_]", "-")
    long = t.str.extract_groups(r"^(?<a>\d{4})-\d{2}(?<b>\d{2})$")
    return pl.when(long.struct.field("a").is_not_null()) \
        .then(pl.concat_str([long.struct.field("a"), long.struct.field("b")], separator="-")).otherwise(t)


def integer(s: pl.Expr, mat: Mat = same) -> tuple[pl.Expr, pl.Expr]:
    """Whole numbers ("12", "12.0", "1,200") → (Int64 or null, not-a-number mask)."""
    t = s.str.replace_all(r"[\s,]", "").str.replace(r"\.0+$", "")
    t = mat(t)
    value = mat(pl.when(t.str.contains(r"^[+-]?\d{1,18}$")).then(t).otherwise(None).cast(pl.Int64, strict=False))
    return value, s.is_not_null() & value.is_null()


def number(s: pl.Expr, mat: Mat = same) -> tuple[pl.Expr, pl.Expr]:
    """Amounts ("$1,200.50") → (Float64 or null, not-a-number mask)."""
    t = mat(s.str.replace_all(r"[\s,$]", ""))
    ok = t.str.contains(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
    value = mat(pl.when(ok).then(t).otherwise(None).cast(pl.Float64, strict=False))
    return value, s.is_not_null() & value.is_null()


_TRUE = ["true", "t", "yes", "y", "1"]
_FALSE = ["false", "f", "no", "n", "0"]


def boolean(s: pl.Expr, mat: Mat = same) -> tuple[pl.Expr, pl.Expr]:
    """Yes/no cells (true/false, Y/N, 1/0 …) → (Boolean or null, unrecognised mask)."""
    k = mat(s.str.strip_chars().str.to_lowercase().str.replace(r"\.0+$", ""))
    value = mat(pl.when(k.is_in(_TRUE)).then(True).when(k.is_in(_FALSE)).then(False).otherwise(None))
    return value, s.is_not_null() & value.is_null()
