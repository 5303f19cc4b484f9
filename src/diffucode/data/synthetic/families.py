"""The task families of the synthetic benchmark (see ``diffucode.data.synthetic``).

Each family gives several function names, argument names, phrasings and solution styles, a grid
of semantic constants (``combos``), a reference implementation ``ref`` (plain Python, independent
of the rendered solution text, so the tests that run the rendered solution check something) and
an input sampler. ``held_out=True`` families only ever appear in the test split.
"""

from __future__ import annotations

import random
from diffucode.data.synthetic._core import Family, grid

# ----------------------------------------------------------------------------- input helpers

WORDS = (
    "apple", "river", "stone", "cloud", "tiger", "lemon", "paper", "green", "house", "music",
    "table", "light", "bread", "sugar", "horse", "ocean", "plant", "chair", "smile", "water",
    "cat", "dog", "sun", "map", "car", "sky", "tea", "box", "pen", "egg", "ant", "owl", "bee",
    "level", "noon", "kayak", "radar", "moon", "star", "book", "code", "data", "tree", "bird",
)
SHORT_WORDS = tuple(w for w in WORDS if len(w) <= 4)
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def int_list(rng: random.Random, lo: int = -9, hi: int = 20, min_len: int = 3, max_len: int = 6) -> list[int]:
    return [rng.randint(lo, hi) for _ in range(rng.randint(min_len, max_len))]


def words(rng: random.Random, lo: int = 2, hi: int = 4, pool=WORDS) -> list[str]:
    return [rng.choice(pool) for _ in range(rng.randint(lo, hi))]


def mixed_text(rng: random.Random) -> str:
    """A short phrase with some upper-case letters, digits and spaces."""
    parts = []
    for w in words(rng, 1, 3, SHORT_WORDS + WORDS[:10]):
        if rng.random() < 0.4:
            i = rng.randrange(len(w))
            w = w[:i] + w[i].upper() + w[i + 1 :]
        if rng.random() < 0.3:
            w = w + str(rng.randint(0, 99))
        parts.append(w)
    return " ".join(parts)


def _names(*groups: str) -> tuple[tuple[str, ...], ...]:
    """("a b", "x y") -> (("a", "b"), ("x", "y"))"""
    return tuple(tuple(g.split()) for g in groups)


LIST_ARGS = _names("nums", "numbers", "values", "arr", "lst", "data", "items")
STR_ARGS = _names("s", "text", "string", "word", "phrase")
INT_ARGS = _names("n", "num", "x", "value", "number")
PAIR_ARGS = _names("a b", "x y", "m n", "p q", "first second")


def _sgn(k: int) -> dict:
    return {"bop": "+" if k >= 0 else "-", "babs": abs(k), "bword": "plus" if k >= 0 else "minus",
            "addsub": "add" if k >= 0 else "subtract"}


# ----------------------------------------------------------------------------- arithmetic

AFFINE = Family(
    name="affine", category="arithmetic",
    combos=grid(a=[2, 3, 4, 5, 6, 7, 8, 9], b=[-7, -5, -3, -2, -1, 1, 2, 3, 4, 5, 7, 9]),
    func_names=("scale_and_shift", "linear_map", "transform", "apply_formula", "affine"),
    arg_names=INT_ARGS,
    phrasings=("return $a0 multiplied by $a, $bword $babs",
               "compute $a * $a0 $bop $babs",
               "multiply $a0 by $a and then $addsub $babs"),
    bodies=("    return $a0 * $a $bop $babs\n",
            "    return $a * $a0 $bop $babs\n",
            "    result = $a0 * $a\n    return result $bop $babs\n"),
    derive=lambda p: _sgn(p["b"]),
    ref=lambda p, x: x * p["a"] + p["b"],
    inputs=lambda rng, p: (rng.randint(-20, 20),),
)

SUM_MULTIPLES = Family(
    name="sum_multiples", category="arithmetic", vkey="op",
    combos=grid(op=["sum", "count"], k=[2, 3, 4, 5, 6, 7, 8, 9]),
    func_names={"sum": ("sum_multiples", "sum_of_multiples", "add_multiples", "multiples_total"),
                "count": ("count_multiples", "num_multiples", "how_many_multiples")},
    arg_names=_names("n", "limit", "upper", "stop", "end"),
    phrasings={"sum": ("return the sum of all integers from 1 to $a0 (inclusive) that are divisible by $k",
                       "add up the multiples of $k between 1 and $a0, inclusive",
                       "compute the total of every number from 1 to $a0 that is a multiple of $k"),
               "count": ("return how many integers from 1 to $a0 (inclusive) are divisible by $k",
                         "count the multiples of $k between 1 and $a0, inclusive",
                         "find the number of values in 1..$a0 that are multiples of $k")},
    bodies={"sum": ("    return sum(i for i in range(1, $a0 + 1) if i % $k == 0)\n",
                    "    total = 0\n    for i in range(1, $a0 + 1):\n        if i % $k == 0:\n"
                    "            total += i\n    return total\n",
                    "    return sum(range($k, $a0 + 1, $k))\n"),
            "count": ("    return sum(1 for i in range(1, $a0 + 1) if i % $k == 0)\n",
                      "    count = 0\n    for i in range(1, $a0 + 1):\n        if i % $k == 0:\n"
                      "            count += 1\n    return count\n",
                      "    return $a0 // $k\n")},
    ref=lambda p, n: (sum if p["op"] == "sum" else len)([i for i in range(1, n + 1) if i % p["k"] == 0]),
    # half the inputs are multiples of k, so an off-by-one range end fails
    inputs=lambda rng, p: (p["k"] * rng.randint(0, 6) if rng.random() < 0.5 else rng.randint(0, 40),),
)


def _digit_ref(p, n):
    ds = [int(d) for d in str(n)]
    v = p["v"]
    if v == "sum":
        return sum(ds)
    if v == "square_sum":
        return sum(d * d for d in ds)
    if v == "cube_sum":
        return sum(d**3 for d in ds)
    if v == "product":
        out = 1
        for d in ds:
            out *= d
        return out
    if v == "even_count":
        return sum(d % 2 == 0 for d in ds)
    return max(ds)


DIGIT_STATS = Family(
    name="digit_stats", category="arithmetic",
    combos=grid(v=["sum", "square_sum", "cube_sum", "product", "even_count", "largest"]),
    func_names={"sum": ("digit_sum", "sum_digits", "add_digits"),
                "square_sum": ("square_digit_sum", "sum_digit_squares", "digit_squares"),
                "cube_sum": ("cube_digit_sum", "sum_digit_cubes", "digit_cubes"),
                "product": ("digit_product", "multiply_digits", "product_of_digits"),
                "even_count": ("count_even_digits", "even_digits", "num_even_digits"),
                "largest": ("max_digit", "largest_digit", "biggest_digit")},
    arg_names=_names("n", "num", "number", "value"),
    phrasings={"sum": ("return the sum of the decimal digits of the non-negative integer $a0",
                       "add up the digits of $a0 (a non-negative integer)"),
               "square_sum": ("return the sum of the squares of the digits of the non-negative integer $a0",
                              "square each digit of $a0 (a non-negative integer) and return the total"),
               "cube_sum": ("return the sum of the cubes of the digits of the non-negative integer $a0",
                            "cube each digit of $a0 (a non-negative integer) and return the total"),
               "product": ("return the product of the digits of the non-negative integer $a0",
                           "multiply together all digits of $a0 (a non-negative integer)"),
               "even_count": ("count how many digits of the non-negative integer $a0 are even",
                              "return the number of even digits (0, 2, 4, 6, 8) in $a0, a non-negative integer"),
               "largest": ("return the largest digit of the non-negative integer $a0",
                           "find the biggest decimal digit in $a0 (a non-negative integer)")},
    bodies={"sum": ("    return sum(int(d) for d in str($a0))\n",
                    "    total = 0\n    while $a0 > 0:\n        total += $a0 % 10\n        $a0 //= 10\n"
                    "    return total\n"),
            "square_sum": ("    return sum(int(d) ** 2 for d in str($a0))\n",
                           "    total = 0\n    for d in str($a0):\n        total += int(d) * int(d)\n"
                           "    return total\n"),
            "cube_sum": ("    return sum(int(d) ** 3 for d in str($a0))\n",),
            "product": ("    result = 1\n    for d in str($a0):\n        result *= int(d)\n    return result\n",),
            "even_count": ("    return sum(1 for d in str($a0) if int(d) % 2 == 0)\n",
                           "    return len([d for d in str($a0) if d in '02468'])\n"),
            "largest": ("    return max(int(d) for d in str($a0))\n", "    return int(max(str($a0)))\n")},
    ref=_digit_ref,
    inputs=lambda rng, p: (rng.randint(0, 10 ** rng.randint(1, 5)),),
)


def _clamp_inputs(rng, p):
    r = rng.random()
    if r < 0.3:
        return (rng.randint(p["lo"] - 12, p["lo"] - 1),)
    if r < 0.6:
        return (rng.randint(p["hi"] + 1, p["hi"] + 30),)
    return (rng.randint(p["lo"], p["hi"]),)


CLAMP = Family(
    name="clamp", category="arithmetic",
    combos=grid(lo=[-10, -5, 0, 1], hi=[10, 20, 50, 100]),
    func_names=("clamp", "limit", "bound", "clip_value", "restrict"),
    arg_names=INT_ARGS,
    phrasings=("clamp $a0 to the range [$lo, $hi]",
               "return $a0 limited to lie between $lo and $hi (inclusive)",
               "return $lo if $a0 is below $lo, $hi if it is above $hi, and $a0 otherwise"),
    bodies=("    return max($lo, min($a0, $hi))\n",
            "    if $a0 < $lo:\n        return $lo\n    if $a0 > $hi:\n        return $hi\n    return $a0\n",
            "    return min(max($a0, $lo), $hi)\n"),
    ref=lambda p, x: max(p["lo"], min(x, p["hi"])),
    inputs=_clamp_inputs,
)

ROUND_MULTIPLE = Family(
    name="round_multiple", category="arithmetic", vkey="d",
    combos=grid(k=[2, 3, 4, 5, 10], d=["down", "up"]),
    func_names={"down": ("round_down", "floor_to_multiple", "round_down_to"),
                "up": ("round_up", "ceil_to_multiple", "round_up_to")},
    arg_names=_names("n", "x", "value", "amount"),
    phrasings={"down": ("round the non-negative integer $a0 down to the nearest multiple of $k",
                        "return the largest multiple of $k that is not greater than $a0 (a non-negative integer)"),
               "up": ("round the non-negative integer $a0 up to the nearest multiple of $k",
                      "return the smallest multiple of $k that is not less than $a0 (a non-negative integer)")},
    bodies={"down": ("    return $a0 // $k * $k\n", "    return $a0 - $a0 % $k\n"),
            "up": ("    return ($a0 + $km1) // $k * $k\n",
                   "    if $a0 % $k == 0:\n        return $a0\n    return $a0 + $k - $a0 % $k\n")},
    derive=lambda p: {"km1": p["k"] - 1},
    ref=lambda p, n: n // p["k"] * p["k"] if p["d"] == "down" else -(-n // p["k"]) * p["k"],
    inputs=lambda rng, p: (p["k"] * rng.randint(0, 10) if rng.random() < 0.3 else rng.randint(0, 100),),
)

UNITS = {
    "minutes_seconds": ("minutes", "seconds", 60), "days_hours": ("days", "hours", 24),
    "weeks_days": ("weeks", "days", 7), "kilometers_meters": ("kilometers", "meters", 1000),
    "meters_centimeters": ("meters", "centimeters", 100), "feet_inches": ("feet", "inches", 12),
    "yards_feet": ("yards", "feet", 3), "gallons_quarts": ("gallons", "quarts", 4),
    "pounds_ounces": ("pounds", "ounces", 16), "decades_years": ("decades", "years", 10),
}

UNIT_CONVERT = Family(
    name="unit_convert", category="arithmetic", vkey="d",
    combos=grid(u=list(UNITS), d=["mul", "div"]),
    func_names={"mul": ("${big}_to_${small}", "convert_${big}", "to_${small}"),
                "div": ("${small}_to_${big}", "convert_${small}", "to_${big}")},
    arg_names={"mul": _names("$big", "amount", "n", "value"), "div": _names("$small", "amount", "n", "value")},
    phrasings={"mul": ("convert $a0 $big into $small", "return the number of $small in $a0 $big",
                       "given an amount $a0 in $big, return the same amount in $small"),
               "div": ("convert $a0 $small into whole $big, dropping any remainder",
                       "return how many complete $big fit into $a0 $small")},
    bodies={"mul": ("    return $a0 * $f\n",), "div": ("    return $a0 // $f\n",)},
    derive=lambda p: dict(zip(("big", "small", "f"), UNITS[p["u"]])),
    ref=lambda p, x: x * UNITS[p["u"]][2] if p["d"] == "mul" else x // UNITS[p["u"]][2],
    inputs=lambda rng, p: (rng.randint(0, 50) if p["d"] == "mul" else rng.randint(0, 12 * UNITS[p["u"]][2]),),
)

# ----------------------------------------------------------------------------- conditionals

LABELS = {"nzp": ("negative", "zero", "positive"), "short": ("neg", "zero", "pos"),
          "bea": ("below", "equal", "above"), "lmh": ("low", "mid", "high"), "sym": ("-", "0", "+")}

SIGN_LABEL = Family(
    name="sign_label", category="conditionals",
    combos=grid(t=[0, 5, 10, -5], lab=list(LABELS)),
    func_names=("classify", "compare_to_threshold", "sign_label", "label_number", "describe"),
    arg_names=INT_ARGS,
    phrasings=("return '$l1' if $a0 is less than $t, '$l2' if it equals $t, and '$l3' if it is greater than $t",
               "classify $a0 against $t: '$l1' when smaller, '$l2' when equal, '$l3' when larger"),
    bodies=("    if $a0 < $t:\n        return '$l1'\n    if $a0 == $t:\n        return '$l2'\n    return '$l3'\n",
            "    if $a0 < $t:\n        return '$l1'\n    elif $a0 > $t:\n        return '$l3'\n    else:\n"
            "        return '$l2'\n"),
    derive=lambda p: dict(zip(("l1", "l2", "l3"), LABELS[p["lab"]])),
    ref=lambda p, x: LABELS[p["lab"]][0 if x < p["t"] else 1 if x == p["t"] else 2],
    inputs=lambda rng, p: (p["t"] if rng.random() < 0.25 else p["t"] + rng.randint(-8, 8),),
)


def _fizz_inputs(rng, p):
    a, b = p["ab"]
    r = rng.random()
    if r < 0.2:
        return (a * b * rng.randint(1, 3),)
    if r < 0.45:
        return (a * rng.randint(1, 12),)
    if r < 0.7:
        return (b * rng.randint(1, 12),)
    return (rng.randint(1, 60),)


def _fizz_ref(p, n):
    (a, b), (w1, w2) = p["ab"], p["w"].split("/")
    out = (w1 if n % a == 0 else "") + (w2 if n % b == 0 else "")
    return out or str(n)


FIZZBUZZ = Family(
    name="fizzbuzz", category="conditionals", held_out=True,
    combos=grid(ab=[(3, 5), (2, 3), (3, 7), (4, 5)], w=["Fizz/Buzz", "Foo/Bar", "Ping/Pong", "Tic/Tac"]),
    func_names=("fizzbuzz", "fizz_buzz", "say", "word_for", "game_word"),
    arg_names=INT_ARGS,
    phrasings=("return '$w1$w2' if $a0 is divisible by both $a and $b, '$w1' if only by $a, '$w2' if only by $b, "
               "and otherwise $a0 as a string",
               "play the divisibility game on $a0: '$w1' for multiples of $a, '$w2' for multiples of $b, "
               "'$w1$w2' for multiples of both, else the number itself as a string"),
    bodies=("    if $a0 % $a == 0 and $a0 % $b == 0:\n        return '$w1$w2'\n    if $a0 % $a == 0:\n"
            "        return '$w1'\n    if $a0 % $b == 0:\n        return '$w2'\n    return str($a0)\n",
            "    result = ''\n    if $a0 % $a == 0:\n        result += '$w1'\n    if $a0 % $b == 0:\n"
            "        result += '$w2'\n    return result or str($a0)\n"),
    derive=lambda p: {"a": p["ab"][0], "b": p["ab"][1], "w1": p["w"].split("/")[0], "w2": p["w"].split("/")[1]},
    ref=_fizz_ref,
    inputs=_fizz_inputs,
)

GRADE = Family(
    name="grade", category="conditionals",
    combos=grid(th=[(90, 70), (85, 65), (80, 60), (75, 50), (90, 60), (80, 70)],
                lab=["A/B/C", "high/medium/low", "gold/silver/bronze"]),
    func_names=("grade", "letter_grade", "rank_score", "score_band", "classify_score"),
    arg_names=_names("score", "points", "mark", "n"),
    phrasings=("return '$l1' for a score $a0 of at least $t1, '$l2' for at least $t2, and '$l3' otherwise",
               "map the score $a0 to a band: '$l1' when $a0 >= $t1, '$l2' when $a0 >= $t2, else '$l3'"),
    bodies=("    if $a0 >= $t1:\n        return '$l1'\n    if $a0 >= $t2:\n        return '$l2'\n    return '$l3'\n",
            "    if $a0 >= $t1:\n        return '$l1'\n    elif $a0 >= $t2:\n        return '$l2'\n    else:\n"
            "        return '$l3'\n"),
    derive=lambda p: {"t1": p["th"][0], "t2": p["th"][1], **dict(zip(("l1", "l2", "l3"), p["lab"].split("/")))},
    ref=lambda p, s: p["lab"].split("/")[0 if s >= p["th"][0] else 1 if s >= p["th"][1] else 2],
    inputs=lambda rng, p: (min(100, max(0, rng.choice(p["th"]) + rng.randint(-6, 6))) if rng.random() < 0.7
                           else rng.randint(0, 100),),
)


def _three_ref(p, a, b, c):
    s = sorted([a, b, c])
    return {"largest": s[2], "smallest": s[0], "middle": s[1], "sum_two_largest": s[1] + s[2],
            "sum_two_smallest": s[0] + s[1]}[p["v"]]


PICK_OF_THREE = Family(
    name="pick_of_three", category="conditionals",
    combos=grid(v=["largest", "smallest", "middle", "sum_two_largest", "sum_two_smallest"]),
    func_names={"largest": ("max_of_three", "largest", "biggest_of_three"),
                "smallest": ("min_of_three", "smallest", "least_of_three"),
                "middle": ("middle_value", "median_of_three", "middle"),
                "sum_two_largest": ("sum_two_largest", "top_two_sum", "best_pair_sum"),
                "sum_two_smallest": ("sum_two_smallest", "bottom_two_sum", "low_pair_sum")},
    arg_names=_names("a b c", "x y z", "p q r", "first second third"),
    phrasings={"largest": ("return the largest of the three numbers $a0, $a1 and $a2",
                           "find the maximum of $a0, $a1 and $a2"),
               "smallest": ("return the smallest of the three numbers $a0, $a1 and $a2",
                            "find the minimum of $a0, $a1 and $a2"),
               "middle": ("return the middle value (the median) of $a0, $a1 and $a2",
                          "find the value that is neither the smallest nor the largest of $a0, $a1, $a2 "
                          "when they are sorted"),
               "sum_two_largest": ("return the sum of the two largest of $a0, $a1 and $a2",
                                   "add the two biggest of the numbers $a0, $a1, $a2"),
               "sum_two_smallest": ("return the sum of the two smallest of $a0, $a1 and $a2",
                                    "add the two smallest of the numbers $a0, $a1, $a2")},
    bodies={"largest": ("    return max($a0, $a1, $a2)\n",
                        "    best = $a0\n    if $a1 > best:\n        best = $a1\n    if $a2 > best:\n"
                        "        best = $a2\n    return best\n"),
            "smallest": ("    return min($a0, $a1, $a2)\n",
                         "    best = $a0\n    if $a1 < best:\n        best = $a1\n    if $a2 < best:\n"
                         "        best = $a2\n    return best\n"),
            "middle": ("    return sorted([$a0, $a1, $a2])[1]\n",
                       "    return $a0 + $a1 + $a2 - max($a0, $a1, $a2) - min($a0, $a1, $a2)\n"),
            "sum_two_largest": ("    return $a0 + $a1 + $a2 - min($a0, $a1, $a2)\n",
                                "    return sum(sorted([$a0, $a1, $a2])[1:])\n"),
            "sum_two_smallest": ("    return $a0 + $a1 + $a2 - max($a0, $a1, $a2)\n",
                                 "    return sum(sorted([$a0, $a1, $a2])[:2])\n")},
    ref=_three_ref,
    inputs=lambda rng, p: tuple(rng.randint(-20, 20) for _ in range(3)),
)


def _range_inputs(rng, p):
    r = rng.random()
    if r < 0.5:
        return (rng.choice([p["lo"], p["hi"], p["lo"] - 1, p["hi"] + 1, p["lo"] + 1, p["hi"] - 1]),)
    return (rng.randint(p["lo"] - 10, p["hi"] + 10),)


IN_RANGE = Family(
    name="in_range", category="conditionals", vkey="inc",
    combos=grid(lo=[-5, 0, 1, 3], hi=[9, 10, 20, 50], inc=["inclusive", "exclusive"]),
    func_names=("in_range", "is_between", "within_bounds", "between", "check_range"),
    arg_names=INT_ARGS,
    phrasings={"inclusive": ("return True if $a0 lies between $lo and $hi inclusive, otherwise False",
                             "check whether $lo <= $a0 <= $hi"),
               "exclusive": ("return True if $a0 is strictly between $lo and $hi, otherwise False",
                             "check whether $lo < $a0 < $hi")},
    bodies={"inclusive": ("    return $lo <= $a0 <= $hi\n", "    return $a0 >= $lo and $a0 <= $hi\n",
                          "    if $a0 < $lo or $a0 > $hi:\n        return False\n    return True\n"),
            "exclusive": ("    return $lo < $a0 < $hi\n", "    return $a0 > $lo and $a0 < $hi\n",
                          "    if $a0 <= $lo or $a0 >= $hi:\n        return False\n    return True\n")},
    ref=lambda p, x: (p["lo"] <= x <= p["hi"]) if p["inc"] == "inclusive" else (p["lo"] < x < p["hi"]),
    inputs=_range_inputs,
)

# ----------------------------------------------------------------------------- strings


def _reverse_ref(p, s):
    v = p["v"]
    if v == "chars":
        return s[::-1]
    if v == "words":
        return " ".join(s.split()[::-1])
    if v == "each_word":
        return " ".join(w[::-1] for w in s.split())
    if v == "chars_upper":
        return s[::-1].upper()
    return ",".join(s.split(",")[::-1])


REVERSE_TEXT = Family(
    name="reverse_text", category="strings",
    combos=grid(v=["chars", "words", "each_word", "chars_upper", "items_comma"]),
    func_names={"chars": ("reverse", "reverse_string", "backwards"),
                "words": ("reverse_words", "flip_word_order", "words_backwards"),
                "each_word": ("reverse_each_word", "mirror_words", "flip_each_word"),
                "chars_upper": ("shout_backwards", "reverse_upper", "loud_reverse"),
                "items_comma": ("reverse_items", "reverse_csv", "flip_fields")},
    arg_names=_names("s", "text", "sentence", "line"),
    phrasings={"chars": ("reverse the characters of $a0", "return $a0 written backwards"),
               "words": ("reverse the order of the words in $a0 (words are separated by single spaces)",
                         "return the words of $a0 in reverse order, joined by single spaces"),
               "each_word": ("reverse each word of $a0 but keep the words in their original order",
                             "return $a0 with the letters of every space-separated word reversed"),
               "chars_upper": ("return $a0 reversed and converted to upper case",
                               "write $a0 backwards in capital letters"),
               "items_comma": ("reverse the order of the comma-separated items in $a0",
                               "return the fields of $a0 (separated by commas) in reverse order, still "
                               "comma-separated")},
    bodies={"chars": ("    return $a0[::-1]\n", "    return ''.join(reversed($a0))\n",
                      "    result = ''\n    for ch in $a0:\n        result = ch + result\n    return result\n"),
            "words": ("    return ' '.join($a0.split()[::-1])\n",
                      "    words = $a0.split()\n    words.reverse()\n    return ' '.join(words)\n"),
            "each_word": ("    return ' '.join(w[::-1] for w in $a0.split())\n",),
            "chars_upper": ("    return $a0[::-1].upper()\n", "    return $a0.upper()[::-1]\n"),
            "items_comma": ("    return ','.join($a0.split(',')[::-1])\n",)},
    ref=_reverse_ref,
    inputs=lambda rng, p: ((",".join if p["v"] == "items_comma" else " ".join)(words(rng, 1, 4)),),
)

CHAR_CLASSES = {
    "vowel": ("vowels (a, e, i, o, u, in either case)", "sum(1 for ch in $a0.lower() if ch in 'aeiou')",
              "ch.lower() in 'aeiou'"),
    "consonant": ("consonants (letters other than a, e, i, o, u, in either case)",
                  "sum(1 for ch in $a0 if ch.isalpha() and ch.lower() not in 'aeiou')",
                  "ch.isalpha() and ch.lower() not in 'aeiou'"),
    "digit": ("digit characters", "sum(1 for ch in $a0 if ch.isdigit())", "ch.isdigit()"),
    "upper": ("upper-case letters", "sum(1 for ch in $a0 if ch.isupper())", "ch.isupper()"),
    "space": ("spaces", "$a0.count(' ')", "ch == ' '"),
}


def _count_class_ref(p, s):
    if p["v"] == "letter":
        return s.count(p["c"])
    test = {"vowel": lambda ch: ch.lower() in "aeiou",
            "consonant": lambda ch: ch.isalpha() and ch.lower() not in "aeiou",
            "digit": str.isdigit, "upper": str.isupper, "space": lambda ch: ch == " "}[p["v"]]
    return sum(1 for ch in s if test(ch))


def _count_class_derive(p):
    if p["v"] == "letter":
        return {"what": f"occurrences of the lower-case letter '{p['c']}'", "expr": f"$a0.count('{p['c']}')",
                "cond": f"ch == '{p['c']}'"}
    what, expr, cond = CHAR_CLASSES[p["v"]]
    return {"what": what, "expr": expr, "cond": cond}


COUNT_CHAR_CLASS = Family(
    name="count_char_class", category="strings",
    combos=tuple({"v": v} for v in CHAR_CLASSES) + tuple({"v": "letter", "c": c} for c in "aeost"),
    func_names={"vowel": ("count_vowels", "vowel_count", "num_vowels"),
                "consonant": ("count_consonants", "consonant_count", "num_consonants"),
                "digit": ("count_digits", "digit_count", "num_digits"),
                "upper": ("count_upper", "uppercase_count", "num_capitals"),
                "space": ("count_spaces", "space_count", "num_spaces"),
                "letter": ("count_$c", "count_letter_$c", "num_${c}s")},
    arg_names=STR_ARGS,
    phrasings=("count the $what in $a0", "return the number of $what in the string $a0"),
    bodies=("    return $expr\n",
            "    count = 0\n    for ch in $a0:\n        if $cond:\n            count += 1\n    return count\n"),
    derive=_count_class_derive,
    ref=_count_class_ref,
    inputs=lambda rng, p: (mixed_text(rng),),
)


def _repeat_derive(p):
    return {"sepr": repr(p.get("sep", ""))}


REPEAT_CHARS = Family(
    name="repeat_chars", category="strings",
    combos=tuple({"v": "each", "k": k} for k in (2, 3, 4, 5))
    + tuple({"v": "whole", "k": k, "sep": s} for k in (2, 3, 4) for s in ("-", " ", "", ",")),
    func_names={"each": ("stretch", "repeat_each_char", "stutter", "double_letters"),
                "whole": ("repeat_string", "repeat_joined", "copies")},
    arg_names=STR_ARGS,
    phrasings={"each": ("return $a0 with every character repeated $k times",
                        "repeat each character of $a0 $k times in a row"),
               "whole": ("return $k copies of $a0 joined by the separator $sepr",
                         "repeat $a0 $k times, putting $sepr between consecutive copies")},
    bodies={"each": ("    return ''.join(ch * $k for ch in $a0)\n",
                     "    result = ''\n    for ch in $a0:\n        result += ch * $k\n    return result\n"),
            "whole": ("    return $sepr.join([$a0] * $k)\n",)},
    derive=_repeat_derive,
    ref=lambda p, s: "".join(ch * p["k"] for ch in s) if p["v"] == "each" else p["sep"].join([s] * p["k"]),
    inputs=lambda rng, p: ("".join(rng.choice(LETTERS) for _ in range(rng.randint(1, 4))),),
)


def _caesar_ref(p, s):
    return "".join(chr((ord(ch) - 97 + p["k"]) % 26 + 97) if ch.islower() else ch for ch in s)


CAESAR = Family(
    name="caesar", category="strings", held_out=True,
    combos=grid(k=list(range(1, 26))),
    func_names=("caesar", "shift_letters", "encode", "rotate_letters", "cipher"),
    arg_names=STR_ARGS,
    phrasings=("shift every lower-case letter of $a0 forward by $k places in the alphabet, wrapping around "
               "from 'z' to 'a'; leave other characters unchanged",
               "apply a Caesar cipher with shift $k to the lower-case letters of $a0 (other characters stay as they "
               "are)"),
    bodies=("    result = ''\n    for ch in $a0:\n        if ch.islower():\n"
            "            ch = chr((ord(ch) - 97 + $k) % 26 + 97)\n"
            "        result += ch\n    return result\n",
            "    return ''.join(chr((ord(ch) - 97 + $k) % 26 + 97) if ch.islower() else ch for ch in $a0)\n"),
    ref=_caesar_ref,
    inputs=lambda rng, p: (" ".join(words(rng, 1, 2, SHORT_WORDS + ("xyz", "zoo", "quiz", "wax"))),),
)


def _remove_ref(p, s):
    v = p["v"]
    if v == "char":
        return s.replace(p["c"], "")
    keep = {"vowels": lambda ch: ch.lower() not in "aeiou", "digits": lambda ch: not ch.isdigit(),
            "upper": lambda ch: not ch.isupper()}[v]
    return "".join(ch for ch in s if keep(ch))


REMOVE_CHARS = Family(
    name="remove_chars", category="strings",
    combos=tuple({"v": "char", "c": c} for c in ("a", "e", "s", " ", "-"))
    + tuple({"v": v} for v in ("vowels", "digits", "upper")),
    func_names={"char": ("remove_char", "strip_char", "drop_char", "without_char"),
                "vowels": ("remove_vowels", "disemvowel", "drop_vowels"),
                "digits": ("remove_digits", "strip_digits", "drop_digits"),
                "upper": ("remove_upper", "drop_capitals", "strip_uppercase")},
    arg_names=STR_ARGS,
    phrasings={"char": ("remove every $cr character from $a0", "return $a0 without any occurrence of $cr"),
               "vowels": ("remove all vowels (a, e, i, o, u, in either case) from $a0",
                          "return $a0 with its vowels (a, e, i, o, u, upper or lower case) deleted"),
               "digits": ("remove all digit characters from $a0", "return $a0 with every digit deleted"),
               "upper": ("remove all upper-case letters from $a0", "return $a0 with its capital letters deleted")},
    bodies={"char": ("    return $a0.replace($cr, '')\n", "    return ''.join(ch for ch in $a0 if ch != $cr)\n"),
            "vowels": ("    return ''.join(ch for ch in $a0 if ch.lower() not in 'aeiou')\n",
                       "    result = ''\n    for ch in $a0:\n        if ch not in 'aeiouAEIOU':\n"
                       "            result += ch\n    return result\n"),
            "digits": ("    return ''.join(ch for ch in $a0 if not ch.isdigit())\n",),
            "upper": ("    return ''.join(ch for ch in $a0 if not ch.isupper())\n",)},
    derive=lambda p: {"cr": repr(p.get("c", ""))},
    ref=_remove_ref,
    inputs=lambda rng, p: (mixed_text(rng).replace(" ", rng.choice([" ", "-", " "])),),
)

AFFIXES = ("ab", "py", "re", "ing", "ed", "un", "x")


def _affix_inputs(rng, p):
    w, x = rng.choice(WORDS), p["x"]
    r = rng.random()
    if r < 0.25:
        return (x + w,)
    if r < 0.5:
        return (w + x,)
    if r < 0.7:
        return (w[:2] + x + w[2:],)
    return (w,)


AFFIX_CHECK = Family(
    name="affix_check", category="strings", vkey="where",
    combos=grid(where=["starts", "ends", "contains"], x=list(AFFIXES)),
    func_names={"starts": ("starts_with_$x", "has_prefix", "begins_with_$x"),
                "ends": ("ends_with_$x", "has_suffix", "finishes_with_$x"),
                "contains": ("contains_$x", "has_substring", "includes_$x")},
    arg_names=_names("s", "word", "text", "name"),
    phrasings={"starts": ("return True if $a0 starts with '$x', otherwise False", "check whether $a0 begins with '$x'"),
               "ends": ("return True if $a0 ends with '$x', otherwise False", "check whether $a0 finishes with '$x'"),
               "contains": ("return True if '$x' occurs somewhere in $a0, otherwise False",
                            "check whether $a0 contains the substring '$x'")},
    bodies={"starts": ("    return $a0.startswith('$x')\n", "    return $a0[:$n] == '$x'\n"),
            "ends": ("    return $a0.endswith('$x')\n", "    return len($a0) >= $n and $a0[-$n:] == '$x'\n"),
            "contains": ("    return '$x' in $a0\n", "    return $a0.find('$x') != -1\n")},
    derive=lambda p: {"n": len(p["x"])},
    ref=lambda p, s: {"starts": s.startswith, "ends": s.endswith, "contains": s.__contains__}[p["where"]](p["x"]),
    inputs=_affix_inputs,
)

PAD_STRING = Family(
    name="pad_string", category="strings", vkey="side",
    combos=grid(w=[5, 6, 8, 10], c=["*", "0", "-", "."], side=["left", "right"]),
    func_names={"left": ("pad_left", "right_justify", "left_pad"), "right": ("pad_right", "left_justify", "right_pad")},
    arg_names=STR_ARGS,
    phrasings={"left": ("pad $a0 on the left with '$c' until it is $w characters long (longer strings are returned "
                        "unchanged)",
                        "right-justify $a0 in a field of width $w using '$c' as the fill character"),
               "right": ("pad $a0 on the right with '$c' until it is $w characters long (longer strings are "
                         "returned unchanged)",
                         "left-justify $a0 in a field of width $w, filling with '$c'")},
    bodies={"left": ("    return $a0.rjust($w, '$c')\n", "    return '$c' * ($w - len($a0)) + $a0\n"),
            "right": ("    return $a0.ljust($w, '$c')\n", "    return $a0 + '$c' * ($w - len($a0))\n")},
    ref=lambda p, s: s.rjust(p["w"], p["c"]) if p["side"] == "left" else s.ljust(p["w"], p["c"]),
    inputs=lambda rng, p: ("".join(rng.choice(LETTERS + "0123456789") for _ in range(rng.randint(1, p["w"] + 1))),),
)


def _pal_inputs(rng, p):
    w = "".join(rng.choice("abcdeklmnorst") for _ in range(rng.randint(1, 3)))
    s = w + rng.choice(["", rng.choice(LETTERS)]) + w[::-1]
    r = rng.random()
    if r < 0.3:
        i = rng.randrange(len(s))
        s = s[:i] + s[i].upper() + s[i + 1 :]
    elif r < 0.6:
        i = rng.randrange(1, len(s)) if len(s) > 1 else 0
        s = s[:i] + " " + s[i:]
    elif r < 0.75:
        s = s.capitalize() + " " + rng.choice(LETTERS)
    elif r < 0.9:
        s = rng.choice(WORDS)
    return (s,)


def _pal_ref(p, s):
    t = s
    if p["v"] in ("nospace", "both"):
        t = t.replace(" ", "")
    if p["v"] in ("nocase", "both"):
        t = t.lower()
    return t == t[::-1]


PALINDROME = Family(
    name="palindrome", category="strings",
    combos=grid(v=["exact", "nocase", "nospace", "both"]),
    func_names=("is_palindrome", "palindrome", "reads_same_backwards", "is_mirror"),
    arg_names=STR_ARGS,
    phrasings={"exact": ("return True if $a0 reads the same forwards and backwards (exactly, character by character)",
                         "check whether $a0 is a palindrome, treating upper and lower case as different and "
                         "counting spaces"),
               "nocase": ("return True if $a0 is a palindrome when upper and lower case are treated as equal",
                          "check whether $a0 reads the same backwards, ignoring case (spaces still count)"),
               "nospace": ("return True if $a0 is a palindrome after removing all spaces (case matters)",
                           "check whether $a0 reads the same backwards when spaces are ignored"),
               "both": ("return True if $a0 is a palindrome when spaces are removed and case is ignored",
                        "check whether $a0 reads the same backwards, ignoring both spaces and letter case")},
    bodies={"exact": ("    return $a0 == $a0[::-1]\n",
                      "    for i in range(len($a0) // 2):\n        if $a0[i] != $a0[-1 - i]:\n"
                      "            return False\n    return True\n"),
            "nocase": ("    t = $a0.lower()\n    return t == t[::-1]\n",),
            "nospace": ("    t = $a0.replace(' ', '')\n    return t == t[::-1]\n",),
            "both": ("    t = $a0.replace(' ', '').lower()\n    return t == t[::-1]\n",)},
    ref=_pal_ref,
    inputs=_pal_inputs,
)


def _case_inputs(rng, p):
    ws = []
    for w in words(rng, 1, 3):
        ws.append("".join(ch.upper() if rng.random() < 0.3 else ch for ch in w))
    return (" ".join(ws),)


CASE_TRANSFORM = Family(
    name="case_transform", category="strings",
    combos=grid(v=["upper", "lower", "swap", "title", "capitalize"]),
    func_names={"upper": ("to_upper", "shout", "make_upper"), "lower": ("to_lower", "whisper", "make_lower"),
                "swap": ("swap_case", "invert_case", "flip_case"),
                "title": ("title_case", "capitalize_words", "to_title"),
                "capitalize": ("capitalize_first", "sentence_case", "cap_first")},
    arg_names=STR_ARGS,
    phrasings={"upper": ("convert every letter of $a0 to upper case", "return $a0 in capital letters"),
               "lower": ("convert every letter of $a0 to lower case", "return $a0 in small letters"),
               "swap": ("swap the case of every letter in $a0 (upper becomes lower and lower becomes upper)",
                        "return $a0 with upper-case letters made lower-case and vice versa"),
               "title": ("capitalize the first letter of each space-separated word of $a0 and lower-case the rest",
                         "return $a0 with every word starting with a capital letter and the other letters small"),
               "capitalize": ("make the first character of $a0 upper case and all the others lower case",
                              "return $a0 with only its first letter capitalized")},
    bodies={"upper": ("    return $a0.upper()\n",), "lower": ("    return $a0.lower()\n",),
            "swap": ("    return $a0.swapcase()\n",
                     "    return ''.join(ch.lower() if ch.isupper() else ch.upper() for ch in $a0)\n"),
            "title": ("    return ' '.join(w.capitalize() for w in $a0.split(' '))\n", "    return $a0.title()\n"),
            "capitalize": ("    return $a0.capitalize()\n", "    return $a0[:1].upper() + $a0[1:].lower()\n")},
    ref=lambda p, s: {"upper": s.upper, "lower": s.lower, "swap": s.swapcase, "title": s.title,
                      "capitalize": s.capitalize}[p["v"]](),
    inputs=_case_inputs,
)

JOIN_WORDS = Family(
    name="join_words", category="strings", vkey="case",
    combos=grid(sep=[", ", "-", "|", " + ", "", " ", "_"], case=["keep", "upper"]),
    func_names=("join_words", "combine", "glue", "join_all", "concat_with"),
    arg_names=_names("words", "parts", "items", "tokens", "names"),
    phrasings={"keep": ("join the strings in the list $a0 with $sepr between them",
                        "return the elements of $a0 concatenated, separated by $sepr"),
               "upper": ("join the strings in the list $a0 with $sepr between them, converting each to upper case",
                         "return the upper-cased elements of $a0 concatenated, separated by $sepr")},
    bodies={"keep": ("    return $sepr.join($a0)\n",
                     "    result = ''\n    for i, w in enumerate($a0):\n        if i > 0:\n"
                     "            result += $sepr\n"
                     "        result += w\n    return result\n"),
            "upper": ("    return $sepr.join(w.upper() for w in $a0)\n", "    return $sepr.join($a0).upper()\n")},
    derive=lambda p: {"sepr": repr(p["sep"])},
    ref=lambda p, ws: p["sep"].join(w.upper() if p["case"] == "upper" else w for w in ws),
    inputs=lambda rng, p: (words(rng, 2, 4, SHORT_WORDS),),
)

STRING_ENDS = Family(
    name="string_ends", category="strings",
    combos=grid(v=["first", "last", "both"], k=[1, 2, 3, 4]),
    func_names={"first": ("head", "first_chars", "prefix_of"), "last": ("tail", "last_chars", "suffix_of"),
                "both": ("ends", "first_and_last", "outer_chars")},
    arg_names=STR_ARGS,
    phrasings={"first": ("return the first $kch of $a0", "return the prefix of $a0 made of its first $kch"),
               "last": ("return the last $kch of $a0", "return the suffix of $a0 made of its last $kch"),
               "both": ("return the first $kch of $a0 followed by its last $kch",
                        "concatenate the first $kch and the last $kch of $a0")},
    bodies={"first": ("    return $a0[:$k]\n",), "last": ("    return $a0[-$k:]\n", "    return $a0[len($a0) - $k:]\n"),
            "both": ("    return $a0[:$k] + $a0[-$k:]\n",)},
    derive=lambda p: {"kch": "character" if p["k"] == 1 else f"{p['k']} characters"},
    ref=lambda p, s: {"first": s[: p["k"]], "last": s[-p["k"] :], "both": s[: p["k"]] + s[-p["k"] :]}[p["v"]],
    inputs=lambda rng, p: ("".join(rng.choice(LETTERS) for _ in range(rng.randint(5, 8))),),
)

# ----------------------------------------------------------------------------- lists

OPWORDS = {">": "greater than", "<": "less than", ">=": "at least", "<=": "at most", "!=": "not equal to"}


def _cmp(op: str, x: int, k: int) -> bool:
    return {">": x > k, "<": x < k, ">=": x >= k, "<=": x <= k, "!=": x != k, "==": x == k}[op]


def _near_k_list(rng, k, lo=3, hi=6):
    xs = [k + rng.randint(-6, 6) for _ in range(rng.randint(lo, hi))]
    if rng.random() < 0.6:
        xs[rng.randrange(len(xs))] = k
    return xs


FILTER_COMPARE = Family(
    name="filter_compare", category="lists",
    combos=grid(op=[">", "<", ">=", "<=", "!="], k=[-2, 0, 1, 3, 5, 7, 10]),
    func_names=("filter_values", "keep_matching", "select", "filter_list", "pick_numbers"),
    arg_names=LIST_ARGS,
    phrasings=("return a list of the elements of $a0 that are $opword $k, in their original order",
               "keep only the numbers in $a0 that are $opword $k",
               "filter $a0 down to the values $opword $k"),
    bodies=("    return [x for x in $a0 if x $op $k]\n",
            "    result = []\n    for x in $a0:\n        if x $op $k:\n            result.append(x)\n"
            "    return result\n"),
    derive=lambda p: {"opword": OPWORDS[p["op"]]},
    ref=lambda p, xs: [x for x in xs if _cmp(p["op"], x, p["k"])],
    inputs=lambda rng, p: (_near_k_list(rng, p["k"]),),
)

MAPS = {"mul": ("x * $k", "multiply every element of $a0 by $k", "return a new list with each number in $a0 "
                                                                 "multiplied by $k"),
        "add": ("x + $k", "add $k to every element of $a0", "return a new list with $k added to each number in $a0"),
        "sub": ("x - $k", "subtract $k from every element of $a0", "return a new list with $k subtracted from each "
                                                                   "number in $a0"),
        "mod": ("x % $k", "replace every element of $a0 (non-negative integers) by its remainder modulo $k",
                "return the remainders of the numbers in $a0 (all non-negative) after division by $k"),
        "square": ("x * x", "square every element of $a0", "return a new list with each number in $a0 squared")}


def _map_ref(p, xs):
    k = p.get("k", 0)
    f = {"mul": lambda x: x * k, "add": lambda x: x + k, "sub": lambda x: x - k, "mod": lambda x: x % k,
         "square": lambda x: x * x}[p["v"]]
    return [f(x) for x in xs]


MAP_LIST = Family(
    name="map_list", category="lists",
    combos=tuple({"v": "mul", "k": k} for k in (2, 3, 4, 5)) + tuple({"v": "add", "k": k} for k in (1, 2, 3, 4, 5))
    + tuple({"v": "sub", "k": k} for k in (1, 2, 3, 4, 5)) + tuple({"v": "mod", "k": k} for k in (2, 3, 4, 5))
    + ({"v": "square"},),
    func_names={"mul": ("scale_all", "multiply_each", "times_$k"), "add": ("add_to_all", "shift_up", "plus_$k"),
                "sub": ("subtract_from_all", "shift_down", "minus_$k"), "mod": ("remainders", "mod_all", "mod_$k"),
                "square": ("square_all", "squares", "square_each")},
    arg_names=LIST_ARGS,
    phrasings={v: m[1:] for v, m in MAPS.items()},
    bodies=("    return [$expr for x in $a0]\n",
            "    result = []\n    for x in $a0:\n        result.append($expr)\n    return result\n"),
    derive=lambda p: {"expr": MAPS[p["v"]][0]},
    ref=_map_ref,
    inputs=lambda rng, p: (int_list(rng, 0, 30, 2, 5),),
)

# name -> (description, condition as code, the same condition as a Python function)
PREDICATES = {
    "even": ("even numbers", "x % 2 == 0", lambda x: x % 2 == 0),
    "odd": ("odd numbers", "x % 2 == 1", lambda x: x % 2 == 1),
    "positive": ("positive numbers", "x > 0", lambda x: x > 0),
    "negative": ("negative numbers", "x < 0", lambda x: x < 0),
    "zero": ("zeros", "x == 0", lambda x: x == 0),
    "div3": ("multiples of 3", "x % 3 == 0", lambda x: x % 3 == 0),
    "div4": ("multiples of 4", "x % 4 == 0", lambda x: x % 4 == 0),
    "div5": ("multiples of 5", "x % 5 == 0", lambda x: x % 5 == 0),
    "gt2": ("numbers greater than 2", "x > 2", lambda x: x > 2),
    "gt3": ("numbers greater than 3", "x > 3", lambda x: x > 3),
    "gt5": ("numbers greater than 5", "x > 5", lambda x: x > 5),
    "gt10": ("numbers greater than 10", "x > 10", lambda x: x > 10),
    "lt5": ("numbers less than 5", "x < 5", lambda x: x < 5),
}


def _pred(name: str, x: int) -> bool:
    return PREDICATES[name][2](x)


def _pred_list(rng, p):
    xs = int_list(rng, -10, 15, 3, 7)
    if rng.random() < 0.3:
        xs[rng.randrange(len(xs))] = 0
    return (xs,)


COUNT_IF = Family(
    name="count_if", category="lists",
    combos=grid(v=["even", "odd", "positive", "negative", "zero", "div3", "div4", "div5", "gt2", "gt5", "gt10"]),
    func_names=("count_if", "count_matching", "how_many", "tally", "count_$v"),
    arg_names=LIST_ARGS,
    phrasings=("return the number of $what in $a0", "count how many $what appear in the list $a0"),
    bodies=("    return sum(1 for x in $a0 if $cond)\n",
            "    count = 0\n    for x in $a0:\n        if $cond:\n            count += 1\n    return count\n",
            "    return len([x for x in $a0 if $cond])\n"),
    derive=lambda p: dict(zip(("what", "cond"), PREDICATES[p["v"]][:2])),
    ref=lambda p, xs: sum(1 for x in xs if _pred(p["v"], x)),
    inputs=_pred_list,
)

SUM_IF = Family(
    name="sum_if", category="lists",
    combos=grid(v=["even", "odd", "positive", "negative", "gt3", "gt10", "lt5", "div3", "div5"]),
    func_names=("sum_if", "sum_matching", "total_of", "add_selected", "sum_$v"),
    arg_names=LIST_ARGS,
    phrasings=("return the sum of the $what in $a0", "add up the $what in the list $a0 (0 if there are none)"),
    bodies=("    return sum(x for x in $a0 if $cond)\n",
            "    total = 0\n    for x in $a0:\n        if $cond:\n            total += x\n    return total\n"),
    derive=lambda p: dict(zip(("what", "cond"), PREDICATES[p["v"]][:2])),
    ref=lambda p, xs: sum(x for x in xs if _pred(p["v"], x)),
    inputs=_pred_list,
)

KTH_EXTREME = Family(
    name="kth_extreme", category="lists", vkey="v",
    combos=grid(v=["largest", "smallest"], k=[1, 2, 3]),
    func_names={"largest": ("kth_largest", "nth_biggest", "largest_$k"),
                "smallest": ("kth_smallest", "nth_lowest", "smallest_$k")},
    arg_names=LIST_ARGS,
    phrasings={"largest": ("return the $ordw largest element of $a0 (equal values count separately)",
                           "sort $a0 from largest to smallest and return the element at position $k (counting from "
                           "1)"),
               "smallest": ("return the $ordw smallest element of $a0 (equal values count separately)",
                            "sort $a0 from smallest to largest and return the element at position $k (counting from "
                            "1)")},
    bodies={"largest": ("    return sorted($a0, reverse=True)[$km1]\n", "    return sorted($a0)[-$k]\n"),
            "smallest": ("    return sorted($a0)[$km1]\n", "    ordered = sorted($a0)\n    return ordered[$km1]\n")},
    derive=lambda p: {"km1": p["k"] - 1, "ordw": {1: "1st", 2: "2nd", 3: "3rd"}[p["k"]]},
    ref=lambda p, xs: sorted(xs, reverse=p["v"] == "largest")[p["k"] - 1],
    inputs=lambda rng, p: (rng.sample(range(-10, 30), rng.randint(4, 6)),),
)


def _running_ref(p, xs):
    step = {"sum": lambda u, x: u + x, "product": lambda u, x: u * x, "max": max, "min": min}[p["v"]]
    out: list[int] = []
    for x in xs:
        out.append(x if not out else step(out[-1], x))
    return out


RUNNING = Family(
    name="running", category="lists",
    combos=grid(v=["sum", "product", "max", "min"]),
    func_names={"sum": ("running_sum", "cumulative_sum", "prefix_sums"),
                "product": ("running_product", "cumulative_product", "prefix_products"),
                "max": ("running_max", "cumulative_max", "prefix_maxima"),
                "min": ("running_min", "cumulative_min", "prefix_minima")},
    arg_names=LIST_ARGS,
    phrasings={"sum": ("return the running totals of $a0: element i is the sum of the first i + 1 elements",
                       "compute the cumulative sums of $a0"),
               "product": ("return the running products of $a0: element i is the product of the first i + 1 elements",
                           "compute the cumulative products of $a0"),
               "max": ("return the running maximum of $a0: element i is the largest of the first i + 1 elements",
                       "compute the prefix maxima of $a0"),
               "min": ("return the running minimum of $a0: element i is the smallest of the first i + 1 elements",
                       "compute the prefix minima of $a0")},
    bodies={"sum": ("    result = []\n    total = 0\n    for x in $a0:\n        total += x\n"
                    "        result.append(total)\n    return result\n",
                    "    from itertools import accumulate\n    return list(accumulate($a0))\n"),
            "product": ("    result = []\n    total = 1\n    for x in $a0:\n        total *= x\n"
                        "        result.append(total)\n    return result\n",
                        "    from itertools import accumulate\n"
                        "    return list(accumulate($a0, lambda u, v: u * v))\n"),
            "max": ("    result = []\n    for x in $a0:\n"
                    "        result.append(x if not result else max(result[-1], x))\n    return result\n",
                    "    from itertools import accumulate\n    return list(accumulate($a0, max))\n"),
            "min": ("    result = []\n    for x in $a0:\n"
                    "        result.append(x if not result else min(result[-1], x))\n    return result\n",
                    "    from itertools import accumulate\n    return list(accumulate($a0, min))\n")},
    ref=_running_ref,
    inputs=lambda rng, p: (int_list(rng, -5, 9, 3, 6),),
)

CHUNK = Family(
    name="chunk", category="lists", held_out=True,
    combos=grid(v=["chunks", "sums"], k=[2, 3, 4]),
    func_names={"chunks": ("chunk", "split_into_groups", "batches"),
                "sums": ("chunk_sums", "group_totals", "batch_sums")},
    arg_names=LIST_ARGS,
    phrasings={"chunks": ("split $a0 into consecutive chunks of $k elements; the last chunk may be shorter",
                          "group the elements of $a0 into lists of $k in order (the final group may have fewer)"),
               "sums": ("return the sums of consecutive groups of $k elements of $a0 (the last group may be shorter)",
                        "split $a0 into runs of $k elements in order and return the total of each run")},
    bodies={"chunks": ("    return [$a0[i:i + $k] for i in range(0, len($a0), $k)]\n",
                       "    result = []\n    for i in range(0, len($a0), $k):\n"
                       "        result.append($a0[i:i + $k])\n    return result\n"),
            "sums": ("    return [sum($a0[i:i + $k]) for i in range(0, len($a0), $k)]\n",)},
    ref=lambda p, xs: [(sum if p["v"] == "sums" else list)(xs[i : i + p["k"]]) for i in range(0, len(xs), p["k"])],
    inputs=lambda rng, p: (int_list(rng, 0, 9, 3, 9),),
)


def _rotate_ref(p, xs):
    if not xs:
        return []
    s = p["k"] % len(xs)
    return xs[s:] + xs[:s] if p["d"] == "left" else xs[len(xs) - s :] + xs[: len(xs) - s]


ROTATE = Family(
    name="rotate", category="lists", vkey="d",
    combos=grid(d=["left", "right"], k=[1, 2, 3]),
    func_names={"left": ("rotate_left", "shift_left", "rotl"), "right": ("rotate_right", "shift_right", "rotr")},
    arg_names=LIST_ARGS,
    phrasings={"left": ("rotate $a0 to the left by $k positions (elements leaving the front re-enter at the back)",
                        "move the first $k elements of $a0 to its end, one rotation step at a time"),
               "right": ("rotate $a0 to the right by $k positions (elements leaving the back re-enter at the front)",
                         "move the last element of $a0 to its front, $k times")},
    bodies={"left": ("    if not $a0:\n        return []\n    shift = $k % len($a0)\n"
                     "    return $a0[shift:] + $a0[:shift]\n",
                     "    result = list($a0)\n    for _ in range($k):\n        if result:\n"
                     "            result.append(result.pop(0))\n    return result\n"),
            "right": ("    if not $a0:\n        return []\n    shift = $k % len($a0)\n"
                      "    return $a0[len($a0) - shift:] + $a0[:len($a0) - shift]\n",
                      "    result = list($a0)\n    for _ in range($k):\n        if result:\n"
                      "            result.insert(0, result.pop())\n    return result\n")},
    ref=_rotate_ref,
    inputs=lambda rng, p: (int_list(rng, 0, 9, 2, 6),),
)


def _dedupe_ref(p, xs):
    v = p["v"]
    if v == "first":
        return list(dict.fromkeys(xs))
    if v == "sorted":
        return sorted(set(xs))
    if v == "singles":
        return [x for x in xs if xs.count(x) == 1]
    return [x for x in dict.fromkeys(xs) if xs.count(x) > 1]


DEDUPE = Family(
    name="dedupe", category="lists",
    combos=grid(v=["first", "sorted", "singles", "repeated"]),
    func_names={"first": ("dedupe", "remove_duplicates", "unique_in_order"),
                "sorted": ("sorted_unique", "unique_sorted", "distinct_sorted"),
                "singles": ("singles", "only_unique", "non_repeated"),
                "repeated": ("duplicates", "repeated_values", "find_repeats")},
    arg_names=LIST_ARGS,
    phrasings={"first": ("remove duplicates from $a0, keeping the first occurrence of each value in the original "
                         "order",
                         "return the distinct values of $a0 in the order they first appear"),
               "sorted": ("return the distinct values of $a0 in increasing order", "return the sorted list of "
                                                                                   "unique elements of $a0"),
               "singles": ("return the elements of $a0 that occur exactly once, in their original order",
                           "keep only the values of $a0 that are not repeated anywhere in the list"),
               "repeated": ("return each value that occurs more than once in $a0, once, in order of first appearance",
                            "list the values of $a0 that appear at least twice, without repeats, in first-seen order")},
    bodies={"first": ("    seen = set()\n    result = []\n    for x in $a0:\n        if x not in seen:\n"
                      "            seen.add(x)\n            result.append(x)\n    return result\n",
                      "    return list(dict.fromkeys($a0))\n"),
            "sorted": ("    return sorted(set($a0))\n",),
            "singles": ("    return [x for x in $a0 if $a0.count(x) == 1]\n",),
            "repeated": ("    result = []\n    for x in $a0:\n        if $a0.count(x) > 1 and x not in result:\n"
                         "            result.append(x)\n    return result\n",)},
    ref=_dedupe_ref,
    inputs=lambda rng, p: (int_list(rng, 0, 6, 4, 8),),
)

PAIRS = {"diff": ("$a0[i + 1] - $a0[i]", "q - p", "return the differences between consecutive elements of $a0 (each "
                                                  "element minus the one before it)"),
         "sum": ("$a0[i] + $a0[i + 1]", "p + q", "return the sums of each pair of adjacent elements in $a0"),
         "product": ("$a0[i] * $a0[i + 1]", "p * q", "return the products of each pair of adjacent elements in $a0"),
         "max": ("max($a0[i], $a0[i + 1])", "max(p, q)", "return the larger value of each pair of adjacent elements "
                                                         "in $a0"),
         "absdiff": ("abs($a0[i + 1] - $a0[i])", "abs(q - p)", "return the absolute differences between "
                                                               "neighbouring elements of $a0")}


PAIRWISE = Family(
    name="pairwise", category="lists",
    combos=grid(v=list(PAIRS)),
    func_names={"diff": ("differences", "deltas", "steps_between"),
                "sum": ("pair_sums", "adjacent_sums", "neighbour_sums"),
                "product": ("pair_products", "adjacent_products", "neighbour_products"),
                "max": ("pair_max", "adjacent_max", "neighbour_max"),
                "absdiff": ("abs_differences", "gaps", "distances")},
    arg_names=LIST_ARGS,
    phrasings={v: (d[2], d[2] + "; the result has one element fewer than $a0") for v, d in PAIRS.items()},
    bodies=("    return [$expr for i in range(len($a0) - 1)]\n", "    return [$zexpr for p, q in zip($a0, $a0[1:])]\n"),
    derive=lambda p: {"expr": PAIRS[p["v"]][0], "zexpr": PAIRS[p["v"]][1]},
    ref=lambda p, xs: [{"diff": q - a, "sum": a + q, "product": a * q, "max": max(a, q), "absdiff": abs(q - a)}[p["v"]]
                       for a, q in zip(xs, xs[1:])],
    inputs=lambda rng, p: (int_list(rng, -9, 15, 3, 6),),
)


def _find_inputs(rng, p):
    xs = int_list(rng, 0, 5, 3, 7)
    t = rng.choice(xs) if rng.random() < 0.75 else rng.choice([6, 7, 8, 9])
    return (xs, t)


def _find_ref(p, xs, t):
    idx = [i for i, x in enumerate(xs) if x == t]
    if not idx:
        return None if p["miss"] == "None" else -1
    return idx[0] if p["v"] == "first" else idx[-1]


FIND_INDEX = Family(
    name="find_index", category="lists",
    combos=grid(v=["first", "last"], miss=["-1", "None"]),
    func_names={"first": ("find_first", "index_of", "first_position"),
                "last": ("find_last", "last_index_of", "last_position")},
    arg_names=_names("nums target", "items x", "values value", "arr key", "lst item"),
    phrasings={"first": ("return the index of the first occurrence of $a1 in $a0, or $miss if it does not occur",
                         "find where $a1 first appears in the list $a0 and return that index ($miss when absent)"),
               "last": ("return the index of the last occurrence of $a1 in $a0, or $miss if it does not occur",
                        "find where $a1 last appears in the list $a0 and return that index ($miss when absent)")},
    bodies={"first": ("    for i, v in enumerate($a0):\n        if v == $a1:\n            return i\n"
                      "    return $miss\n",
                      "    if $a1 in $a0:\n        return $a0.index($a1)\n    return $miss\n"),
            "last": ("    for i in range(len($a0) - 1, -1, -1):\n        if $a0[i] == $a1:\n            return i\n"
                     "    return $miss\n",
                     "    result = $miss\n    for i, v in enumerate($a0):\n        if v == $a1:\n"
                     "            result = i\n    return result\n")},
    ref=_find_ref,
    inputs=_find_inputs,
)

ELEMENTWISE_OPS = {"sum": ("p + q", "the sums"), "product": ("p * q", "the products"),
"diff": ("p - q", "the differences"),
                   "max": ("max(p, q)", "the larger values"), "min": ("min(p, q)", "the smaller values")}

ELEMENTWISE = Family(
    name="elementwise", category="lists",
    combos=grid(v=list(ELEMENTWISE_OPS)),
    func_names={"sum": ("add_lists", "pairwise_sum", "vector_add"),
                "product": ("multiply_lists", "pairwise_product", "vector_mul"),
                "diff": ("subtract_lists", "pairwise_diff", "vector_sub"),
                "max": ("max_lists", "pairwise_max", "elementwise_max"),
                "min": ("min_lists", "pairwise_min", "elementwise_min")},
    arg_names=_names("a b", "xs ys", "first second", "left right", "nums1 nums2"),
    phrasings={v: (f"return {w} of corresponding elements of the equal-length lists $a0 and $a1"
                   + (" ($a0 element minus $a1 element)" if v == "diff" else ""),
                   f"combine $a0 and $a1 position by position, returning {w} of each pair"
                   + (" (first minus second)" if v == "diff" else ""))
               for v, (_, w) in ELEMENTWISE_OPS.items()},
    bodies=("    return [$expr for p, q in zip($a0, $a1)]\n",
            "    result = []\n    for p, q in zip($a0, $a1):\n        result.append($expr)\n    return result\n"),
    derive=lambda p: {"expr": ELEMENTWISE_OPS[p["v"]][0]},
    ref=lambda p, a, b: [{"sum": x + y, "product": x * y, "diff": x - y, "max": max(x, y), "min": min(x, y)}[p["v"]]
                         for x, y in zip(a, b)],
    inputs=lambda rng, p: (lambda n: (int_list(rng, -5, 9, n, n), int_list(rng, -5, 9, n, n)))(rng.randint(2, 4)),
)

# ----------------------------------------------------------------------------- dicts


def _wc_ref(p, s):
    v = p["v"]
    keys = {"words": s.split(), "nocase": s.lower().split(), "chars": [c for c in s if c != " "],
            "initials": [w[0] for w in s.split()]}[v]
    out: dict = {}
    for k in keys:
        out[k] = out.get(k, 0) + 1
    return out


def _wc_inputs(rng, p):
    pool = ("a", "b", "ab", "ba", "cab", "bad", "the", "cat", "A", "Cat", "The", "tea")
    n = rng.randint(2, 3) if p["v"] == "chars" else rng.randint(3, 6)
    return (" ".join(rng.choice(pool) for _ in range(n)),)


WORD_COUNT = Family(
    name="word_count", category="dicts",
    combos=grid(v=["words", "nocase", "chars", "initials"]),
    func_names={"words": ("word_count", "count_words", "word_frequencies"),
                "nocase": ("word_count_ci", "count_words_lower", "word_freq"),
                "chars": ("char_count", "letter_frequencies", "count_chars"),
                "initials": ("initial_counts", "count_first_letters", "first_letter_freq")},
    arg_names=_names("s", "text", "sentence", "line"),
    phrasings={"words": ("return a dictionary mapping each space-separated word of $a0 to the number of times it "
                         "occurs",
                         "count how often every word appears in $a0 and return the counts as a dict"),
               "nocase": ("return a dictionary mapping each word of $a0, converted to lower case, to its number of "
                          "occurrences",
                          "count the words of $a0 case-insensitively (using lower-case keys) and return the counts "
                          "as a dict"),
               "chars": ("return a dictionary mapping each non-space character of $a0 to the number of times it "
                         "occurs",
                         "count every character of $a0 except spaces and return the counts as a dict"),
               "initials": ("return a dictionary mapping the first letter of each word of $a0 to how many words "
                            "start with it",
                            "count the words of $a0 by their first character and return the counts as a dict")},
    bodies={"words": ("    counts = {}\n    for w in $a0.split():\n        counts[w] = counts.get(w, 0) + 1\n"
                      "    return counts\n",
                      "    counts = {}\n    for w in $a0.split():\n        if w in counts:\n"
                      "            counts[w] += 1\n        else:\n            counts[w] = 1\n    return counts\n"),
            "nocase": ("    counts = {}\n    for w in $a0.lower().split():\n"
                       "        counts[w] = counts.get(w, 0) + 1\n    return counts\n",),
            "chars": ("    counts = {}\n    for ch in $a0:\n        if ch != ' ':\n"
                      "            counts[ch] = counts.get(ch, 0) + 1\n    return counts\n",),
            "initials": ("    counts = {}\n    for w in $a0.split():\n"
                         "        counts[w[0]] = counts.get(w[0], 0) + 1\n    return counts\n",)},
    ref=_wc_ref,
    inputs=_wc_inputs,
)


def _small_dict(rng, lo, hi, distinct=False, n_lo=3, n_hi=5):
    keys = rng.sample(["a", "b", "c", "d", "e", "x", "y", "z"], rng.randint(n_lo, n_hi))
    vals = rng.sample(range(lo, hi + 1), len(keys)) if distinct else [rng.randint(lo, hi) for _ in keys]
    return dict(zip(keys, vals))


DICT_FILTER = Family(
    name="dict_filter", category="dicts",
    combos=grid(op=[">", "<", ">=", "=="], k=[0, 1, 2, 5]),
    func_names=("filter_dict", "select_entries", "keep_entries", "filter_by_value", "prune"),
    arg_names=_names("d", "counts", "scores", "data", "mapping"),
    phrasings=("return a new dictionary with only the entries of $a0 whose value is $opword $k",
               "keep the key-value pairs of $a0 whose values are $opword $k"),
    bodies=("    return {key: v for key, v in $a0.items() if v $op $k}\n",
            "    result = {}\n    for key, v in $a0.items():\n        if v $op $k:\n            result[key] = v\n"
            "    return result\n"),
    derive=lambda p: {"opword": {">": "greater than", "<": "less than", ">=": "at least", "==": "equal to"}[p["op"]]},
    ref=lambda p, d: {k: v for k, v in d.items() if _cmp(p["op"], v, p["k"])},
    inputs=lambda rng, p: (_small_dict(rng, p["k"] - 3, p["k"] + 3),),
)


def _agg_ref(p, d):
    v = p["v"]
    if v == "sum":
        return sum(d.values())
    if v == "max_key":
        return max(d, key=d.get)
    if v == "min_key":
        return min(d, key=d.get)
    return sorted(d, key=d.get, reverse=v == "desc")


DICT_AGGREGATE = Family(
    name="dict_aggregate", category="dicts",
    combos=grid(v=["sum", "max_key", "min_key", "asc", "desc"]),
    func_names={"sum": ("total_value", "sum_values", "dict_total"), "max_key": ("best_key", "argmax", "key_of_max"),
                "min_key": ("worst_key", "argmin", "key_of_min"),
                "asc": ("keys_by_value", "rank_ascending", "sort_keys_by_value"),
                "desc": ("keys_by_value_desc", "rank_descending", "leaderboard")},
    arg_names=_names("d", "scores", "prices", "counts", "data"),
    phrasings={"sum": ("return the sum of all values in the dictionary $a0", "add up the values stored in $a0"),
               "max_key": ("return the key of $a0 with the largest value (all values are distinct)",
                           "find which key of $a0 maps to the biggest value (values are distinct)"),
               "min_key": ("return the key of $a0 with the smallest value (all values are distinct)",
                           "find which key of $a0 maps to the smallest value (values are distinct)"),
               "asc": ("return the keys of $a0 sorted by their values, smallest value first",
                       "list the keys of $a0 in increasing order of value"),
               "desc": ("return the keys of $a0 sorted by their values, largest value first",
                        "list the keys of $a0 in decreasing order of value")},
    bodies={"sum": ("    return sum($a0.values())\n", "    total = 0\n    for key in $a0:\n"
                                                      "        total += $a0[key]\n    return total\n"),
            "max_key": ("    return max($a0, key=$a0.get)\n",
                        "    best = None\n    for key, v in $a0.items():\n"
                        "        if best is None or v > $a0[best]:\n            best = key\n    return best\n"),
            "min_key": ("    return min($a0, key=$a0.get)\n",
                        "    best = None\n    for key, v in $a0.items():\n"
                        "        if best is None or v < $a0[best]:\n            best = key\n    return best\n"),
            "asc": ("    return sorted($a0, key=$a0.get)\n", "    return sorted($a0, key=lambda key: $a0[key])\n"),
            "desc": ("    return sorted($a0, key=$a0.get, reverse=True)\n",
                     "    return sorted($a0, key=lambda key: $a0[key], reverse=True)\n")},
    ref=_agg_ref,
    inputs=lambda rng, p: (_small_dict(rng, 0, 20, distinct=True),),
)

def _group_ref(p, ws):
    out: dict = {}
    for w in ws:
        out.setdefault({"length": len(w), "first": w[0], "last": w[-1]}[p["v"]], []).append(w)
    return out


GROUP_KEYS = {"length": ("len(w)", "their length", "length"), "first": ("w[0]", "their first letter", "first letter"),
              "last": ("w[-1]", "their last letter", "last letter")}

GROUP_BY = Family(
    name="group_by", category="dicts", held_out=True,
    combos=grid(v=list(GROUP_KEYS)),
    func_names={"length": ("group_by_length", "bucket_by_size", "by_length"),
                "first": ("group_by_initial", "bucket_by_first", "by_first_letter"),
                "last": ("group_by_last_letter", "bucket_by_last", "by_last_letter")},
    arg_names=_names("words", "items", "names", "strings", "tokens"),
    phrasings=("group the words in $a0 by $what: return a dict mapping each $kname to the list of words with it, in "
               "their original order",
               "return a dictionary whose keys are the values of $kname found in $a0 and whose values are the lists "
               "of words (in order) having that $kname"),
    bodies=("    groups = {}\n    for w in $a0:\n        groups.setdefault($expr, []).append(w)\n    return groups\n",
            "    groups = {}\n    for w in $a0:\n        key = $expr\n        if key not in groups:\n"
            "            groups[key] = []\n        groups[key].append(w)\n    return groups\n"),
    derive=lambda p: dict(zip(("expr", "what", "kname"), GROUP_KEYS[p["v"]])),
    ref=_group_ref,
    inputs=lambda rng, p: (words(rng, 3, 4, ("ant", "bee", "cat", "car", "tea", "sea", "apple", "bread", "axe", "egg",
                                             "pen", "sun", "ball", "bell", "tree")),),
)


def _merge_ref(p, a, b):
    v = p["v"]
    if v == "first":
        return {**b, **a}
    if v == "second":
        return {**a, **b}
    out = dict(a)
    for k, x in b.items():
        out[k] = (out[k] + x if v == "sum" else max(out[k], x)) if k in out else x
    return out


def _merge_inputs(rng, p):
    keys = ["a", "b", "c"]
    a = {k: rng.randint(1, 9) for k in rng.sample(keys, rng.randint(1, 2))}
    b = {k: rng.randint(1, 9) for k in rng.sample(keys, rng.randint(1, 3))}
    return (a, b)


MERGE_DICTS = Family(
    name="merge_dicts", category="dicts",
    combos=grid(v=["sum", "max", "first", "second"]),
    func_names={"sum": ("merge_add", "combine_counts", "add_dicts"), "max": ("merge_max", "combine_max", "max_merge"),
                "first": ("merge_keep_first", "merge_prefer_first", "combine_first"),
                "second": ("merge", "update_dict", "merge_prefer_second")},
    arg_names=_names("a b", "d1 d2", "first second", "left right", "old new"),
    phrasings={"sum": ("merge the dictionaries $a0 and $a1 into a new dict; for keys in both, add the two values",
                       "combine $a0 and $a1, summing the values of keys that appear in both"),
               "max": ("merge the dictionaries $a0 and $a1 into a new dict; for keys in both, keep the larger value",
                       "combine $a0 and $a1, taking the maximum value for keys that appear in both"),
               "first": ("merge the dictionaries $a0 and $a1 into a new dict; for keys in both, keep the value from "
                         "$a0",
                         "combine $a0 and $a1 so that $a0 wins whenever a key appears in both"),
               "second": ("merge the dictionaries $a0 and $a1 into a new dict; for keys in both, keep the value "
                          "from $a1",
                          "combine $a0 and $a1 so that $a1 wins whenever a key appears in both")},
    bodies={"sum": ("    result = dict($a0)\n    for key, v in $a1.items():\n"
                    "        result[key] = result.get(key, 0) + v\n    return result\n",),
            "max": ("    result = dict($a0)\n    for key, v in $a1.items():\n"
                    "        result[key] = max(result[key], v) if key in result else v\n    return result\n",),
            "first": ("    result = dict($a1)\n    result.update($a0)\n    return result\n",
                      "    return {**$a1, **$a0}\n"),
            "second": ("    result = dict($a0)\n    result.update($a1)\n    return result\n",
                       "    return {**$a0, **$a1}\n")},
    ref=_merge_ref,
    inputs=_merge_inputs,
)

# ----------------------------------------------------------------------------- loops


def _collatz_ref(p, n):
    steps, peak, odd = 0, n, 0
    while n != 1:
        if n % 2 == 0:
            n //= 2
        else:
            n = 3 * n + 1
            odd += 1
        steps += 1
        peak = max(peak, n)
    return {"steps": steps, "peak": peak, "odd": odd}[p["v"]]


COLLATZ = Family(
    name="collatz", category="loops",
    combos=grid(v=["steps", "peak", "odd"]),
    func_names={"steps": ("collatz_steps", "steps_to_one", "hailstone_length"),
                "peak": ("collatz_peak", "hailstone_max", "highest_point"),
                "odd": ("collatz_odd_steps", "count_triplings", "odd_moves")},
    arg_names=_names("n", "start", "num", "value"),
    phrasings={"steps": ("starting from the positive integer $a0, repeatedly halve it if even or replace it by 3 * "
                         "$a0 + 1 if odd; "
                         "return the number of steps needed to reach 1",
                         "return how many Collatz steps (n -> n // 2 if even, 3 * n + 1 if odd) it takes $a0 to "
                         "reach 1"),
               "peak": ("follow the Collatz sequence from the positive integer $a0 (halve if even, 3 * n + 1 if "
                        "odd) until it "
                        "reaches 1 and return the largest value seen, including $a0 itself",
                        "return the maximum value on the Collatz path (n -> n // 2 if even, 3 * n + 1 if odd) from "
                        "$a0 down to 1"),
               "odd": ("follow the Collatz sequence from the positive integer $a0 (halve if even, 3 * n + 1 if odd) "
                       "until it "
                       "reaches 1 and return how many times the 3 * n + 1 rule was applied",
                       "count the odd steps (n -> 3 * n + 1) on the Collatz path from $a0 to 1, where even n goes "
                       "to n // 2")},
    bodies={"steps": ("    steps = 0\n    while $a0 != 1:\n        if $a0 % 2 == 0:\n            $a0 //= 2\n"
                      "        else:\n"
                      "            $a0 = 3 * $a0 + 1\n        steps += 1\n    return steps\n",),
            "peak": ("    peak = $a0\n    while $a0 != 1:\n        if $a0 % 2 == 0:\n            $a0 //= 2\n"
                     "        else:\n"
                     "            $a0 = 3 * $a0 + 1\n        peak = max(peak, $a0)\n    return peak\n",),
            "odd": ("    count = 0\n    while $a0 != 1:\n        if $a0 % 2 == 0:\n            $a0 //= 2\n"
                    "        else:\n"
                    "            $a0 = 3 * $a0 + 1\n            count += 1\n    return count\n",)},
    ref=_collatz_ref,
    inputs=lambda rng, p: (rng.randint(1, 30),),
)


def _base_ref(p, n):
    ds = []
    while n > 0:
        ds.append(n % p["b"])
        n //= p["b"]
    return len(ds) if p["v"] == "count" else sum(ds)


BASE_DIGITS = Family(
    name="base_digits", category="loops", held_out=True,
    combos=grid(v=["count", "sum"], b=[2, 3, 5, 7, 8, 10]),
    func_names={"count": ("digits_in_base", "base_length", "num_digits_base_$b"),
                "sum": ("digit_sum_base", "base_digit_sum", "sum_digits_base_$b")},
    arg_names=_names("n", "num", "value", "number"),
    phrasings={"count": ("return how many digits the positive integer $a0 has when written in base $b",
                         "count the digits of $a0 (a positive integer) in its base-$b representation"),
               "sum": ("return the sum of the digits of the positive integer $a0 written in base $b",
                       "write $a0 (a positive integer) in base $b and add up its digits")},
    bodies={"count": ("    count = 0\n    while $a0 > 0:\n        $a0 //= $b\n        count += 1\n    return count\n",),
            "sum": ("    total = 0\n    while $a0 > 0:\n        total += $a0 % $b\n        $a0 //= $b\n"
                    "    return total\n",)},
    ref=_base_ref,
    inputs=lambda rng, p: (rng.randint(1, 10 ** rng.randint(1, 3)),),
)


def _power_ref(p, n):
    start = {"all": 1, "odd": 1, "even": 2}[p["which"]]
    step = 1 if p["which"] == "all" else 2
    return sum(i ** p["p"] for i in range(start, n + 1, step))


def _power_derive(p):
    kind = {"all": "", "odd": "odd ", "even": "even "}[p["which"]]
    what = {1: f"the {kind}integers", 2: f"the squares of the {kind}integers",
            3: f"the cubes of the {kind}integers"}[p["p"]]
    rng_expr = {"all": "range(1, $a0 + 1)", "odd": "range(1, $a0 + 1, 2)", "even": "range(2, $a0 + 1, 2)"}[p["which"]]
    return {"what": what, "pw": "" if p["p"] == 1 else f" ** {p['p']}", "rng": rng_expr}


POWER_SUM = Family(
    name="power_sum", category="loops",
    combos=grid(p=[1, 2, 3], which=["all", "odd", "even"]),
    func_names=("series_sum", "power_sum", "sum_of_powers", "sum_series", "total_powers"),
    arg_names=_names("n", "limit", "upto", "count"),
    phrasings=("return the sum of $what from 1 to $a0 inclusive (0 if there are none)",
               "add up $what between 1 and $a0, inclusive"),
    bodies=("    return sum(i$pw for i in $rng)\n",
            "    total = 0\n    for i in $rng:\n        total += i$pw\n    return total\n"),
    derive=_power_derive,
    ref=_power_ref,
    inputs=lambda rng, p: (rng.randint(0, 15),),
)


def _is_prime(k):
    return k >= 2 and all(k % d for d in range(2, k))


def _prime_ref(p, n):
    v = p["v"]
    if v == "count":
        return sum(_is_prime(k) for k in range(2, n))
    if v == "sum":
        return sum(k for k in range(2, n) if _is_prime(k))
    if v == "is_prime":
        return _is_prime(n)
    k = n + 1
    while not _is_prime(k):
        k += 1
    return k


PRIMES = Family(
    name="primes", category="loops",
    combos=grid(v=["count", "sum", "is_prime", "next"]),
    func_names={"count": ("count_primes", "prime_count", "num_primes_below"),
                "sum": ("sum_primes", "prime_sum", "sum_primes_below"),
                "is_prime": ("is_prime", "prime", "check_prime"),
                "next": ("next_prime", "prime_after", "following_prime")},
    arg_names=_names("n", "num", "limit", "x"),
    phrasings={"count": ("return how many prime numbers are smaller than $a0", "count the primes p with p < $a0"),
               "sum": ("return the sum of all prime numbers smaller than $a0", "add up the primes below $a0"),
               "is_prime": ("return True if $a0 is a prime number, otherwise False",
                            "check whether the integer $a0 is prime"),
               "next": ("return the smallest prime number greater than $a0",
                        "find the first prime strictly larger than $a0")},
    bodies={"count": ("    count = 0\n    for k in range(2, $a0):\n"
                      "        if all(k % d != 0 for d in range(2, k)):\n            count += 1\n    return count\n",),
            "sum": ("    total = 0\n    for k in range(2, $a0):\n        if all(k % d != 0 for d in range(2, k)):\n"
                    "            total += k\n    return total\n",),
            "is_prime": ("    if $a0 < 2:\n        return False\n    for d in range(2, $a0):\n"
                         "        if $a0 % d == 0:\n            return False\n    return True\n",
                         "    return $a0 >= 2 and all($a0 % d != 0 for d in range(2, $a0))\n"),
            "next": ("    k = $a0 + 1\n    while k < 2 or any(k % d == 0 for d in range(2, k)):\n        k += 1\n"
                     "    return k\n",)},
    ref=_prime_ref,
    # primes as inputs catch "< n" vs "<= n" slips
    inputs=lambda rng, p: (rng.choice([2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31]) if rng.random() < 0.4
                           else rng.randint(0, 50),),
)

# ----------------------------------------------------------------------------- recursion


def _gcd(a, b):
    while b:
        a, b = b, a % b
    return a


GCD_LCM = Family(
    name="gcd_lcm", category="recursion",
    combos=grid(v=["gcd", "lcm", "coprime"]),
    func_names={"gcd": ("gcd", "greatest_common_divisor", "hcf"),
                "lcm": ("lcm", "least_common_multiple", "smallest_common_multiple"),
                "coprime": ("coprime", "are_coprime", "is_coprime")},
    arg_names=PAIR_ARGS,
    phrasings={"gcd": ("return the greatest common divisor of the positive integers $a0 and $a1",
                       "compute gcd($a0, $a1) for positive integers with Euclid's algorithm"),
               "lcm": ("return the least common multiple of the positive integers $a0 and $a1",
                       "compute the smallest positive number divisible by both $a0 and $a1"),
               "coprime": ("return True if the positive integers $a0 and $a1 have no common divisor other than 1",
                           "check whether $a0 and $a1 are coprime")},
    bodies={"gcd": ("    if $a1 == 0:\n        return $a0\n    return $fn($a1, $a0 % $a1)\n",
                    "    while $a1:\n        $a0, $a1 = $a1, $a0 % $a1\n    return $a0\n"),
            "lcm": ("    g, h = $a0, $a1\n    while h:\n        g, h = h, g % h\n    return $a0 * $a1 // g\n",
                    "    import math\n    return $a0 * $a1 // math.gcd($a0, $a1)\n"),
            "coprime": ("    g, h = $a0, $a1\n    while h:\n        g, h = h, g % h\n    return g == 1\n",
                        "    import math\n    return math.gcd($a0, $a1) == 1\n")},
    ref=lambda p, a, b: {"gcd": _gcd(a, b), "lcm": a * b // _gcd(a, b), "coprime": _gcd(a, b) == 1}[p["v"]],
    inputs=lambda rng, p: (lambda g: (g * rng.randint(1, 9), g * rng.randint(1, 9)))(rng.choice([1, 1, 2, 3, 4, 5, 6])),
)


def _multi_ref(p, n):
    if n <= 0:
        return 1 if p["op"] == "product" else 0
    rest = _multi_ref(p, n - p["k"])
    return n * rest if p["op"] == "product" else n + rest


MULTI_FACTORIAL = Family(
    name="multi_factorial", category="recursion", vkey="op",
    combos=grid(op=["product", "sum"], k=[1, 2, 3]),
    func_names={"product": ("step_factorial", "multi_factorial", "stepped_product", "fact_step_$k"),
                "sum": ("step_sum", "stepped_sum", "sum_down_by_$k", "countdown_total")},
    arg_names=_names("n", "num", "start", "x"),
    phrasings={"product": ("return $a0 * ($a0 - $k) * ($a0 - $k2) * ... using recursion, multiplying only the "
                           "positive terms "
                           "(the result is 1 when $a0 <= 0)",
                           "recursively compute the product of $a0, $a0 - $k, $a0 - $k2, ... down to the last "
                           "positive term "
                           "(1 if $a0 <= 0)"),
               "sum": ("return $a0 + ($a0 - $k) + ($a0 - $k2) + ... using recursion, adding only the positive terms "
                       "(the result is 0 when $a0 <= 0)",
                       "recursively compute the sum of $a0, $a0 - $k, $a0 - $k2, ... down to the last positive term "
                       "(0 if $a0 <= 0)")},
    bodies={"product": ("    if $a0 <= 0:\n        return 1\n    return $a0 * $fn($a0 - $k)\n",),
            "sum": ("    if $a0 <= 0:\n        return 0\n    return $a0 + $fn($a0 - $k)\n",)},
    derive=lambda p: {"k2": 2 * p["k"]},
    ref=_multi_ref,
    inputs=lambda rng, p: (rng.randint(0, 12),),
)


def _fib_ref(p, n):
    x, y = p["start"]
    for _ in range(n):
        x, y = y, x + y
    return x


FIB_LIKE = Family(
    name="fib_like", category="recursion", held_out=True,
    combos=grid(start=[(0, 1), (2, 1), (1, 1), (1, 2), (3, 1), (0, 2)]),
    func_names=("fib", "sequence_term", "nth_term", "lucas_like", "term"),
    arg_names=_names("n", "i", "index", "k"),
    phrasings=("return term number $a0 (counting from 0) of the sequence that starts $s0, $s1 and where every later "
               "term is the sum of the two before it",
               "with f(0) = $s0, f(1) = $s1 and f(n) = f(n - 1) + f(n - 2), return f($a0)"),
    bodies=("    if $a0 == 0:\n        return $s0\n    if $a0 == 1:\n        return $s1\n"
            "    return $fn($a0 - 1) + $fn($a0 - 2)\n",
            "    x, y = $s0, $s1\n    for _ in range($a0):\n        x, y = y, x + y\n    return x\n"),
    derive=lambda p: {"s0": p["start"][0], "s1": p["start"][1]},
    ref=_fib_ref,
    inputs=lambda rng, p: (rng.randint(0, 15),),
)


def _rdig_ref(p, n):
    v = p["v"]
    if v == "root":
        while n >= 10:
            n = sum(int(d) for d in str(n))
        return n
    if v == "count":
        return len(str(n))
    out = 1
    for d in str(n):
        out *= int(d) or 1
    return out


RECURSIVE_DIGITS = Family(
    name="recursive_digits", category="recursion",
    combos=grid(v=["root", "count", "nonzero_product"]),
    func_names={"root": ("digital_root", "repeated_digit_sum", "single_digit"),
                "count": ("count_digits_rec", "digit_length", "num_len"),
                "nonzero_product": ("nonzero_digit_product", "product_nonzero_digits", "digit_product_rec")},
    arg_names=_names("n", "num", "number", "value"),
    phrasings={"root": ("repeatedly replace the non-negative integer $a0 by the sum of its digits until a single "
                        "digit remains, and return it",
                        "return the digital root of $a0 (a non-negative integer), computed recursively"),
               "count": ("return the number of decimal digits of the non-negative integer $a0, using recursion",
                         "recursively count how many digits $a0 (a non-negative integer) has"),
               "nonzero_product": ("return the product of the non-zero digits of the non-negative integer $a0 (1 if "
                                   "there are none), using recursion",
                                   "recursively multiply together the digits of $a0 that are not 0 (1 if there are "
                                   "none)")},
    bodies={"root": ("    if $a0 < 10:\n        return $a0\n    return $fn(sum(int(d) for d in str($a0)))\n",),
            "count": ("    if $a0 < 10:\n        return 1\n    return 1 + $fn($a0 // 10)\n",),
            "nonzero_product": ("    if $a0 == 0:\n        return 1\n    d = $a0 % 10\n"
                                "    return (d if d else 1) * $fn($a0 // 10)\n",)},
    ref=_rdig_ref,
    inputs=lambda rng, p: (rng.randint(0, 10 ** rng.randint(1, 5)),),
)


def _to_base(n, b):
    return str(n) if n < b else _to_base(n // b, b) + str(n % b)


TO_BASE = Family(
    name="to_base", category="recursion",
    combos=grid(b=[2, 3, 4, 5, 6, 7, 8, 9]),
    func_names=("to_base_$b", "convert_base", "base_string", "in_base", "encode_base"),
    arg_names=_names("n", "num", "value", "number"),
    phrasings=("return the base-$b representation of the non-negative integer $a0 as a string of digits",
               "recursively convert $a0 (a non-negative integer) to a string in base $b"),
    bodies=("    if $a0 < $b:\n        return str($a0)\n    return $fn($a0 // $b) + str($a0 % $b)\n",
            "    digits = ''\n    while True:\n        digits = str($a0 % $b) + digits\n        $a0 //= $b\n"
            "        if $a0 == 0:\n"
            "            return digits\n"),
    ref=lambda p, n: _to_base(n, p["b"]),
    inputs=lambda rng, p: (rng.randint(0, 10 ** rng.randint(1, 3)),),
)


def _nested_ref(p, xs):
    v = p["v"]
    if v == "flatten":
        out = []
        for it in xs:
            out.extend(_nested_ref(p, it) if isinstance(it, list) else [it])
        return out
    if v == "total":
        return sum(_nested_ref(p, it) if isinstance(it, list) else it for it in xs)
    if v == "count":
        return sum(_nested_ref(p, it) if isinstance(it, list) else 1 for it in xs)
    return 1 + max([_nested_ref(p, it) for it in xs if isinstance(it, list)], default=0)


def _nested_inputs(rng, p, depth=0):
    out = []
    for _ in range(rng.randint(1 if depth else 2, 3)):
        if depth < 2 and rng.random() < 0.35:
            out.append(_nested_inputs(rng, p, depth + 1)[0])
        else:
            out.append(rng.randint(0, 9))
    return (out,)


NESTED = Family(
    name="nested", category="recursion",
    combos=grid(v=["flatten", "total", "count", "depth"]),
    func_names={"flatten": ("flatten", "flatten_deep", "unnest"), "total": ("nested_sum", "deep_sum", "sum_nested"),
                "count": ("count_leaves", "deep_count", "count_nested"),
                "depth": ("max_depth", "nesting_depth", "list_depth")},
    arg_names=_names("items", "data", "nested", "lst", "xs"),
    phrasings={"flatten": ("flatten the arbitrarily nested list $a0 into a flat list of its numbers, in order",
                           "return all numbers inside the nested lists of $a0 as one flat list, left to right"),
               "total": ("return the sum of all numbers in the arbitrarily nested list $a0",
                         "recursively add up every number inside $a0, however deeply nested"),
               "count": ("return how many numbers the arbitrarily nested list $a0 contains at any depth",
                         "recursively count the non-list elements of $a0"),
               "depth": ("return the nesting depth of the list $a0: a list without inner lists has depth 1",
                         "recursively find how deeply lists are nested in $a0 (a flat list has depth 1)")},
    bodies={"flatten": ("    result = []\n    for item in $a0:\n        if isinstance(item, list):\n"
                        "            result.extend($fn(item))\n"
                        "        else:\n            result.append(item)\n    return result\n",),
            "total": ("    total = 0\n    for item in $a0:\n        if isinstance(item, list):\n"
                      "            total += $fn(item)\n"
                      "        else:\n            total += item\n    return total\n",),
            "count": ("    count = 0\n    for item in $a0:\n        if isinstance(item, list):\n"
                      "            count += $fn(item)\n"
                      "        else:\n            count += 1\n    return count\n",),
            "depth": ("    depth = 1\n    for item in $a0:\n        if isinstance(item, list):\n"
                      "            depth = max(depth, 1 + $fn(item))\n"
                      "    return depth\n",)},
    ref=_nested_ref,
    inputs=_nested_inputs,
)

ALL_FAMILIES: tuple[Family, ...] = (
    AFFINE, SUM_MULTIPLES, DIGIT_STATS, CLAMP, ROUND_MULTIPLE, UNIT_CONVERT,
    SIGN_LABEL, FIZZBUZZ, GRADE, PICK_OF_THREE, IN_RANGE,
    REVERSE_TEXT, COUNT_CHAR_CLASS, REPEAT_CHARS, CAESAR, REMOVE_CHARS, AFFIX_CHECK, PAD_STRING, PALINDROME,
    CASE_TRANSFORM, JOIN_WORDS, STRING_ENDS,
    FILTER_COMPARE, MAP_LIST, COUNT_IF, SUM_IF, KTH_EXTREME, RUNNING, CHUNK, ROTATE, DEDUPE, PAIRWISE, FIND_INDEX,
    ELEMENTWISE,
    WORD_COUNT, DICT_FILTER, DICT_AGGREGATE, GROUP_BY, MERGE_DICTS,
    COLLATZ, BASE_DIGITS, POWER_SUM, PRIMES,
    GCD_LCM, MULTI_FACTORIAL, FIB_LIKE, RECURSIVE_DIGITS, TO_BASE, NESTED,
)

