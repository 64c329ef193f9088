"""Generates a profile CSV: realistic values, an optional share of broken rows.

    .venv/bin/python -m bench.gen_profiles OUT.csv --rows 100000 --broken 0.01 --seed 1

Prints, on stderr, how many rows it broke and their line numbers' file (OUT.csv.broken).
"""

from __future__ import annotations

import argparse
import csv
import random
import sys

FIRST = ["Anna", "Ivan", "Maria", "Pavel", "Olga", "John", "Mary", "Sergey", "Elena", "Dmitry",
         "Kate", "Nikita", "Irina", "Alexey", "Tatiana", "Peter", "Linda", "James", "Svetlana", "Oleg"]
LAST = ["Ivanov", "Smith", "Petrova", "Brown", "Sidorov", "Kuznetsova", "Jones", "Popov", "Miller", "Orlova"]
CITIES = ["Moscow", "Kazan", "Perm", "Tver", "Omsk", "London", "Berlin", "Riga"]
BROKEN_KINDS = ("email", "birthday", "score", "duplicate")
MOBILE_PREFIXES = ("903", "905", "916", "925", "926", "977", "985")  # valid Russian mobile codes


def generate(path: str, rows: int, broken: float, seed: int) -> list[int]:
    rng = random.Random(seed)
    broken_lines: list[int] = []
    last_good_email = ""  # a duplicate repeats a row that loads, or it would not be a duplicate
    with open(path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["email", "first_name", "last_name", "phone", "birthday", "city", "score"])
        for i in range(rows):
            line = i + 2  # the header is line 1
            email = f"user{i}.{rng.randrange(10**6)}@example{i % 97}.com"
            row = [email, rng.choice(FIRST), rng.choice(LAST),
                   f"+7 {rng.choice(MOBILE_PREFIXES)} {rng.randrange(10**7):07d}",
                   f"19{rng.randrange(50, 99)}-0{rng.randrange(1, 9)}-1{rng.randrange(0, 9)}",
                   rng.choice(CITIES), str(rng.randrange(1000))]
            if last_good_email and rng.random() < broken:
                kind = BROKEN_KINDS[len(broken_lines) % len(BROKEN_KINDS)]
                if kind == "email":
                    row[0] = email.replace("@", " at ")
                elif kind == "birthday":
                    row[4] = "31.02.1990x"
                elif kind == "score":
                    row[6] = "many"
                else:
                    row[0] = last_good_email
                broken_lines.append(line)
            else:
                last_good_email = email
            writer.writerow(row)
    return broken_lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--broken", type=float, default=0.0, help="share of broken rows (0-1)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    lines = generate(args.out, args.rows, args.broken, args.seed)
    with open(args.out + ".broken", "w") as out:
        out.write("".join(f"{n}\n" for n in lines))
    print(f"{args.rows} rows, {len(lines)} broken (lines in {args.out}.broken)", file=sys.stderr)


if __name__ == "__main__":
    main()
