"""What the SQL WHERE box may call: DuckDB functions and operators by name, as data.

Everything not listed here is refused by :mod:`backend.sqlguard`, so a DuckDB upgrade that adds
functions cannot widen the box (tests/hostile/test_hostile_functions.py walks every function
DuckDB ships and checks each is either listed here or refused). Macros are never listed: their
bodies can run queries (``pg_get_viewdef``, ``format_type``…).

Each listed name has a *kind* that tells the guard how big its result can get per row:
``plain`` (no bigger than its arguments together), ``pairwise`` (work grows with the product of
its two text arguments: edit distances), or a growth rule for functions that build large values
from small ones (``repeat``, ``lpad``, ``range``, ``replace`` …): those need constant sizes, and
the guard adds every result's estimated size to a per-row budget.
"""

from __future__ import annotations


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


OPERATORS = _names("""
    != % & && * ** + - ->> / // < <-> << <= <=> <@ = > >= >> @ @> ^ ^@ | || ~ ~~ ~~* ~~~ !~~ !~~*
    !__postfix
""")
MATH = _names("""
    abs acos acosh add asin asinh atan atan2 atanh bit_count cbrt ceil ceiling cos cosh cot
    degrees divide even exp factorial floor gamma gcd greatest greatest_common_divisor isfinite
    isinf isnan lcm least least_common_multiple lgamma ln log log10 log2 mod multiply nextafter
    pi pow power radians random round round_even roundbankers sign signbit sin sinh sqrt
    subtract tan tanh trunc xor
""")
STRING = _names("""
    ascii base64 bin bit_length char_length character_length chr concat concat_ws contains
    decode encode ends_with format_bytes formatReadableDecimalSize formatReadableSize from_base64
    from_binary from_hex hamming hash hex ilike_escape instr lcase left left_grapheme len length
    length_grapheme like_escape lower ltrim md5 md5_number mismatches nfc_normalize
    not_ilike_escape not_like_escape octet_length ord overlay parse_dirname parse_dirpath
    parse_filename parse_formatted_bytes parse_path position prefix reverse right right_grapheme
    rtrim sha1 sha256 split starts_with str_split str_split_regex string_split string_split_regex
    string_to_array strip_accents strlen strpos substr substring substring_grapheme suffix
    to_base64 to_binary to_hex translate trim ucase unbin unhex unicode upper url_decode
    url_encode gen_random_uuid uuid uuidv4 uuidv7 uuid_extract_timestamp uuid_extract_version
""")
REGEX = _names("""
    regexp_escape regexp_extract regexp_extract_all regexp_full_match regexp_matches
    regexp_split_to_array
""")
# Reading the clock is fine (``now()``); reading settings or the session is not.
DATETIME = _names("""
    age century current_date current_localtime current_localtimestamp date_diff date_part
    date_sub date_trunc datediff datepart datesub datetrunc day dayname dayofmonth dayofweek
    dayofyear decade epoch epoch_ms epoch_ns epoch_us era get_current_time get_current_timestamp
    hour isodow isoyear julian last_day make_date make_time make_timestamp make_timestamp_ms
    make_timestamp_ns make_timestamptz microsecond millennium millisecond minute month monthname
    nanosecond normalized_interval now quarter second strftime strptime time_bucket timezone
    timezone_hour timezone_minute to_centuries to_days to_decades to_hours to_microseconds
    to_millennia to_milliseconds to_minutes to_months to_quarters to_seconds to_timestamp
    to_weeks to_years today transaction_timestamp try_strptime week weekday weekofyear year
    yearweek
""")
LIST = _names("""
    array_cat array_concat array_contains array_cosine_distance array_cosine_similarity
    array_cross_product array_distance array_distinct array_dot_product array_extract
    array_grade_up array_has array_has_all array_has_any array_indexof array_inner_product
    array_intersect array_length array_negative_dot_product array_negative_inner_product
    array_position array_reverse_sort array_select array_slice array_sort array_unique
    array_value array_where array_zip cardinality element_at flatten grade_up list_cat
    list_concat list_contains list_cosine_distance list_cosine_similarity list_distance
    list_distinct list_dot_product list_element list_extract list_grade_up list_has list_has_all
    list_has_any list_indexof list_inner_product list_intersect list_negative_dot_product
    list_negative_inner_product list_pack list_position list_reverse_sort list_select list_slice
    list_sort list_unique list_value list_where list_zip
""")
STRUCT_MAP_JSON = _names("""
    map map_concat map_contains map_entries map_extract map_extract_value map_from_entries
    map_keys map_values row struct_concat struct_contains struct_extract struct_extract_at
    struct_has struct_indexof struct_insert struct_keys struct_pack struct_position
    struct_update struct_values array_to_json json_array json_array_length json_contains
    json_exists json_extract json_extract_path json_extract_path_text json_extract_string
    json_keys json_object json_quote json_structure json_type json_valid json_value to_json
""")
PAIRWISE = _names("damerau_levenshtein editdist3 jaccard jaro_similarity jaro_winkler_similarity "
                  "levenshtein")  # fmt: skip

# Growth rules (see backend.sqlguard._size): argument positions that must be constant counts.
GROWTH: dict[str, str] = {
    "repeat": "repeat",  # repeat(text or list, n): n copies
    "lpad": "pad", "rpad": "pad",  # (text, n, fill): exactly n characters
    "list_resize": "resize", "array_resize": "resize",  # (list, n[, fill]): n items
    "range": "series", "generate_series": "series",  # (a[, b[, step]]): whole-number constants
    "replace": "replace",  # (text, from, to): each match may become `to`
    "regexp_replace": "replace",  # (text, pattern, to[, flags]): each position may become `to`
    "printf": "format", "format": "format",  # a constant format, widths at most 1,000
    "list_aggregate": "aggregate", "list_aggr": "aggregate",  # a named aggregate, from a list
    "array_aggregate": "aggregate", "array_aggr": "aggregate",
}  # fmt: skip
LIST_AGGREGATES = _names("""
    any_value avg bool_and bool_or count first last max median min mode product stddev_pop
    stddev_samp string_agg sum var_pop var_samp
""")

# Plain functions whose result can be several times their input (measured on DuckDB 2.0: bin
# writes 8 characters a byte, a control character becomes "\u0001" in JSON): nested, they
# multiply, so the guard counts the factor.
EXPANDS: dict[str, int] = {
    "bin": 8, "to_binary": 8, "hex": 2, "to_hex": 2, "base64": 2, "to_base64": 2,
    "url_encode": 3, "regexp_escape": 2, "json_quote": 6, "to_json": 6, "array_to_json": 6,
    "json_array": 6, "json_object": 6, "strftime": 10,
}  # fmt: skip

ALLOWED: dict[str, str] = {
    **{n: "plain" for n in OPERATORS | MATH | STRING | REGEX | DATETIME | LIST | STRUCT_MAP_JSON},
    **{n: "pairwise" for n in PAIRWISE},
    **GROWTH,
}

# What a refusal says for well-known names that are not on the list (the rest get a generic
# "not on the list" message): why, and what to write instead where there is something.
WHY_NOT: dict[str, str] = {
    "sleep_ms": "it only waits", "pg_sleep": "it only waits",
    "current_setting": "it reads the server's settings", "getenv": "it reads the server",
    "getvariable": "it reads the session", "current_query": "it reads the session",
    "pg_get_viewdef": "it reads the catalog", "format_type": "it reads the catalog",
    "pg_get_constraintdef": "it reads the catalog", "get_block_size": "it reads the catalog",
    "nextval": "it changes state", "setseed": "it changes state", "setval": "it changes state",
    "if": "use CASE WHEN … THEN … ELSE … END", "nullif": "use CASE WHEN … THEN … END",
    "ifnull": "use coalesce(a, b)",
    "list_sum": "use list_aggregate(l, 'sum')", "list_avg": "use list_aggregate(l, 'avg')",
    "list_max": "use list_aggregate(l, 'max')", "list_min": "use list_aggregate(l, 'min')",
    "list_count": "use list_aggregate(l, 'count')", "split_part": "use string_split(s, sep)[n]",
}  # fmt: skip

# Types a CAST may name (DuckDB's canonical names as the parser reports them), and lists of them.
CAST_TYPES = _names("""
    BOOLEAN BOOL TINYINT SMALLINT INTEGER INT INT4 INT8 INT2 INT1 BIGINT HUGEINT UTINYINT
    USMALLINT UINTEGER UBIGINT UHUGEINT FLOAT FLOAT4 REAL DOUBLE FLOAT8 DECIMAL NUMERIC VARCHAR
    TEXT STRING CHAR BPCHAR DATE TIME TIMESTAMP DATETIME TIMESTAMPTZ TIMESTAMP_S TIMESTAMP_MS
    TIMESTAMP_NS INTERVAL UUID BLOB JSON LIST
""")
COLLATIONS = _names("nocase noaccent nfc binary")
