"""A synthetic social-registry CSV: individuals living in households, written as a stream.

Used by the benchmark (a million rows) and for demo data. The file has one row per person;
the people of a household follow each other and share a `group_code` and a location. Each
household has exactly one HEAD, who is its primary recipient (`recipient_info` 1); about a
fifth of households also name a secondary adult recipient (2).

Three kinds of deliberately bad rows are mixed in, never as a HEAD, spread evenly over the
first nine tenths of the file (each kind's count is its share of the rows, rounded), and
counted exactly as written in the returned `GeneratedFile`:

* invalid rows, each broken in exactly one field (the kinds cycle through `INVALID_KINDS`);
* duplicate rows, which repeat an earlier valid person's national_id (otherwise a new person);
* likely-duplicate rows: an earlier valid person registered again, in another household, the way
  real duplicates look (`DUPLICATE_KINDS`, in turn: a letter of a name mistyped, two letters
  transposed, day and month of birth swapped, one digit of the date slipped, a middle name written
  once, the person moved to another place and written without accents, and the same phone); usually
  without a national_id (a second one sometimes). The file's `planted_duplicates` are the truth: which
  row repeats which, and how.

The output depends only on the arguments: the same seed and `today` give the same bytes.
Rows are built in chunks and written as they are made; the whole file is never in memory.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass
from datetime import date
from pathlib import Path

HEADER = (
    "first_name", "last_name", "dob", "sex", "group_code", "recipient_info", "individual_role",
    "national_id", "phone", "email", "location_name", "location_code", "region", "able_bodied",
    "educated_level", "number_of_children", "disability", "income",
)
(FIRST, LAST, DOB, SEX, GROUP, RECIPIENT, ROLE, NATIONAL_ID, PHONE, EMAIL, LOCATION_NAME, LOCATION_CODE,
 REGION, ABLE_BODIED, EDUCATED_LEVEL, NUMBER_OF_CHILDREN, DISABILITY, INCOME) = range(len(HEADER))

FEMALE_FIRST_NAMES = (
    "Mary", "Elizabeth", "Sarah", "Emily", "Grace", "Hannah", "Olivia", "Charlotte", "Margaret", "Alice",
    "María", "Ana", "Lucía", "Carmen", "Sofía", "Isabel", "Gabriela", "Valentina", "Camila", "Rosa",
    "Amélie", "Claire", "Juliette", "Margaux", "Chloé", "Fatima", "Aisha", "Mariam", "Layla", "Noor",
    "Yasmin", "Zainab", "Amina", "Salma", "Huda", "Wanjiru", "Akinyi", "Njeri", "Zawadi", "Imani",
    "Neema", "Halima", "Rehema", "Chiamaka", "Ngozi", "Adaeze", "Folake", "Abena", "Efua", "Priya",
    "Ananya", "Lakshmi", "Deepa", "Sunita", "Kavya", "Meera", "Linh", "Thu", "Lan", "Siti",
    "Dewi", "Putri", "Maricel", "Rosalie", "Olga", "Natalia", "Irina", "Ewa", "Katarzyna", "Mei",
    "Jing", "Yan", "Yuki", "Ji-woo", "Ayşe",
)
MALE_FIRST_NAMES = (
    "John", "James", "William", "Thomas", "David", "Michael", "Daniel", "Samuel", "Peter", "George",
    "José", "Juan", "Carlos", "Luis", "Miguel", "Alejandro", "Diego", "Javier", "Mateo", "Santiago",
    "Pierre", "Louis", "Antoine", "Hugo", "Étienne", "Mohamed", "Ahmed", "Omar", "Ali", "Hassan",
    "Youssef", "Karim", "Ibrahim", "Khalid", "Tariq", "Otieno", "Kamau", "Mwangi", "Juma", "Baraka",
    "Hamisi", "Kipchoge", "Onyango", "Chinedu", "Emeka", "Oluwaseun", "Kwame", "Kofi", "Yaw", "Tunde",
    "Babajide", "Rahul", "Arjun", "Vikram", "Sanjay", "Rajesh", "Anil", "Suresh", "Minh", "Tuan",
    "Huy", "Duc", "Budi", "Agus", "Joko", "Jomar", "Rodel", "Ivan", "Dmitri", "Piotr",
    "Tomasz", "Andrei", "Wei", "Qiang", "Mehmet",
)
LAST_NAMES = (
    "Smith", "Johnson", "Brown", "Taylor", "Wilson", "Davies", "Evans", "Thomas", "Roberts", "Walker",
    "Wright", "Thompson", "White", "Hughes", "Edwards", "Green", "Hall", "Wood", "Harris", "Clarke",
    "O'Brien", "Murphy", "Kelly", "Byrne", "Ryan", "García", "Rodríguez", "Martínez", "López", "González",
    "Hernández", "Pérez", "Sánchez", "Ramírez", "Torres", "Flores", "Rivera", "Gómez", "Díaz", "Morales",
    "Reyes", "Cruz", "Ortiz", "Gutiérrez", "Castillo", "Vargas", "Mendoza", "Rojas", "Silva", "Santos",
    "Oliveira", "Souza", "Pereira", "Costa", "Ferreira", "Martin", "Bernard", "Dubois", "Durand", "Lefebvre",
    "Moreau", "Laurent", "Fournier", "Girard", "Bonnet", "Haddad", "Khoury", "Mansour", "Nasser", "Saleh",
    "Farah", "Hussein", "Abdullah", "Rahman", "Karimi", "Aziz", "Hamdan", "Qureshi", "Siddiqui", "Bakr",
    "Ochieng", "Kariuki", "Njoroge", "Mutua", "Kiprop", "Achieng", "Omondi", "Wambui", "Mugo", "Kimani",
    "Odhiambo", "Wanjiku", "Mwangi", "Kamau", "Otieno", "Okafor", "Adeyemi", "Okeke", "Eze", "Nwosu",
    "Balogun", "Adebayo", "Mensah", "Owusu", "Boateng", "Asante", "Appiah", "Diallo", "Traoré", "Coulibaly",
    "Keita", "Ndiaye", "Sow", "Bamba", "Koné", "Moyo", "Ncube", "Dlamini", "Nkosi", "Khumalo",
    "Banda", "Phiri", "Mwale", "Tembo", "Zulu", "Sharma", "Patel", "Singh", "Kumar", "Gupta",
    "Reddy", "Nair", "Iyer", "Das", "Chowdhury", "Khan", "Ahmed", "Hossain", "Islam", "Begum",
    "Nguyen", "Tran", "Le", "Pham", "Hoang", "Vu", "Dang", "Bui", "Santoso", "Wijaya",
    "Halim", "Pratama", "Susanto", "Bautista", "Villanueva", "Aquino", "Mercado", "Ramos", "Navarro", "Domingo",
    "Castro", "Kowalski", "Nowak", "Wiśniewski", "Ivanov", "Petrov", "Smirnov", "Popescu", "Horvat", "Novák",
    "Kovács", "Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu",
    "Zhou", "Kim", "Lee", "Park", "Choi", "Tanaka", "Sato", "Suzuki", "Yamamoto", "Müller",
    "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Rossi", "Russo", "Ferrari",
    "Esposito", "Bianchi", "Romano", "Colombo", "Yılmaz", "Kaya", "Demir", "Şahin", "Çelik", "Andersen",
    "Hansen", "Johansson", "Larsen", "Nielsen",
)
PLACES_BY_REGION = {
    "North": (
        "Ashford", "Brookhaven", "Cedar Falls", "Dunmore", "Elmstead", "Fairview", "Glenrock", "Highmoor",
        "Ironbridge", "Juniper Hill", "Kingsbury", "Lakeside", "Millbrook", "Northgate", "Oakridge",
        "Pinecrest", "Queensferry", "Ravenscar", "Stonehaven", "Thornbury",
    ),
    "South": (
        "Amanzi", "Baobab Flats", "Coral Bay", "Del Sur", "El Puerto", "Fuentesol", "Golden Sands",
        "Harbour Point", "Isla Verde", "Jacaranda", "Kilifi Road", "Las Palmas", "Marisol", "Nyali",
        "Ocean View", "Palmira", "Riverside", "San Lucas", "Santa Rosa", "Southport",
    ),
    "East": (
        "Amberley", "Bayswater", "Chaka", "Dawnfield", "Eastwick", "Fenwick", "Greenport", "Hollowmere",
        "Ikanga", "Jomvu", "Kisima", "Lindale", "Mashariki", "Newhaven", "Orient Bay", "Port Elara",
        "Rosemont", "Sunrise Park", "Tidewater", "Upton",
    ),
    "West": (
        "Alder Creek", "Baylor Springs", "Coldwater", "Dry Gulch", "Eagle Rock", "Falconridge", "Granite Pass",
        "Hawthorne", "Ironwood", "Kestrel Point", "Longmeadow", "Mesa Verde", "Nightfall", "Old Mill",
        "Prairie View", "Redcliff", "Sandstone", "Sunset Ridge", "Westbury", "Willow Bend",
    ),
    "Central": (
        "Ambrose", "Bellmont", "Capital Heights", "Dalton", "Equinox", "Fairhaven", "Grandview", "Hillcrest",
        "Inglewood", "Junction City", "Kenton", "Lowland", "Midvale", "Newcastle", "Old Town", "Parkside",
        "Riverbend", "Springfield", "Townsend", "Union Square",
    ),
}
# (location_name, location_code, region), e.g. ("Ashford", "N-001", "North")
LOCATIONS = tuple(
    (place, f"{region[0]}-{number:03d}", region)
    for region, places in PLACES_BY_REGION.items()
    for number, place in enumerate(places, start=1)
)

EDUCATION_LEVELS = ("none", "primary", "secondary", "tertiary")
DISABILITY_LEVELS = ("none", "mild", "moderate", "severe")
# One value per kind of invalid row, in the order they cycle: (column, broken value as written in the file).
INVALID_KINDS = (
    (DOB, "2023-02-30"),  # a date that does not exist
    (DOB, None),  # a year after `today`; filled in per file
    (EDUCATED_LEVEL, "university"),
    (NUMBER_OF_CHILDREN, "-1"),
    (FIRST, ""),
    (INCOME, '"12,5"'),  # a decimal comma: quoted, as the value holds the separator
    (SEX, "Z"),
)

MAX_AGE = 110
CHUNK_ROWS = 50_000
_INVALID, _DUPLICATE, _LIKELY = range(3)
_NEVER = 1 << 62
_POOL_SIZE = 256  # earlier people kept per location (and for national_ids) to copy from
_SECONDARY_CHANCE = 0.24  # of households with an adult member besides the head
_HOUSEHOLD_SIZES = (1,) * 12 + (2,) * 18 + (3,) * 20 + (4,) * 20 + (5,) * 14 + (6,) * 9 + (7,) * 7
# Member relationships to the head, weighted; spouses are decided separately (at most one).
_RELATIONS = (
    ("child",) * 60 + ("grandchild",) * 8 + ("parent",) * 6 + ("grandparent",) * 2 + ("sibling",) * 8
    + ("other",) * 10 + ("unrelated",) * 4
)
_ROLE_NAMES = {  # relation: (role when female, role when male)
    "spouse": ("SPOUSE", "SPOUSE"),
    "child": ("DAUGHTER", "SON"),
    "grandchild": ("GRANDDAUGHTER", "GRANDSON"),
    "parent": ("MOTHER", "FATHER"),
    "grandparent": ("GRANDMOTHER", "GRANDFATHER"),
    "sibling": ("SISTER", "BROTHER"),
    "other": ("OTHER RELATIVE", "OTHER RELATIVE"),
    "unrelated": ("NOT RELATED", "NOT RELATED"),
}
_GENDER_NEUTRAL = frozenset({"spouse", "other", "unrelated"})
# Chance that a member of each relation carries the head's last name.
_SHARES_LAST_NAME = {"spouse": 0.6, "child": 0.92, "grandchild": 0.8, "parent": 0.7, "grandparent": 0.6,
                     "sibling": 0.85, "other": 0.5, "unrelated": 0.0}
_COUNTRY_CODES = ("1", "44", "52", "63", "91", "233", "234", "254", "255", "256", "263", "880")
_TYPO_LETTERS = "aeioulnrstmkdh"
DUPLICATE_KINDS = ("typo", "transposed", "day_month_swapped", "dob_digit", "middle_name", "moved", "same_phone")


def _weighted(levels: tuple[str, ...], weights: tuple[int, ...]) -> tuple[str, ...]:
    """A tuple to draw from with `random.choice`, each level repeated by its weight."""
    return tuple(level for level, weight in zip(levels, weights, strict=True) for _ in range(weight))


def _education_draws() -> tuple[tuple[str, ...], ...]:
    """Per age 0..MAX_AGE, a weighted tuple to draw educated_level from (none, primary, secondary, tertiary)."""
    brackets = ((5, (19, 1, 0, 0)), (11, (1, 9, 0, 0)), (17, (1, 4, 5, 0)), (24, (1, 3, 5, 3)), (64, (3, 6, 7, 3)),
                (MAX_AGE, (6, 8, 4, 2)))
    return tuple(_weighted(EDUCATION_LEVELS, next(weights for top, weights in brackets if age <= top))
                 for age in range(MAX_AGE + 1))


_EDUCATION_BY_AGE = _education_draws()
_DISABILITY_DRAW = _weighted(DISABILITY_LEVELS + ("",), (85, 4, 3, 1, 7))  # "" is not recorded


def _email_part(name: str) -> str:
    """`María O'Brien` -> `maria`, `obrien`: lowercase ASCII letters only."""
    return "".join(c for c in unicodedata.normalize("NFKD", name).lower() if "a" <= c <= "z")


_EMAIL_PARTS = {name: _email_part(name) for name in FEMALE_FIRST_NAMES + MALE_FIRST_NAMES + LAST_NAMES}


@dataclass(frozen=True)
class GeneratedFile:
    """What `write_registry_file` wrote; every count is of rows actually in the file."""

    path: Path
    rows: int  # data rows written (excluding header)
    households: int
    invalid_rows: int  # rows deliberately broken in one field
    duplicate_rows: int  # rows repeating an earlier row's national_id
    likely_duplicate_rows: int  # an earlier person registered again (see DUPLICATE_KINDS)
    # (row, the earlier row it repeats, kind): data rows numbered from 1, as intake numbers them
    planted_duplicates: tuple[tuple[int, int, str], ...] = ()


def write_registry_file(path: Path, rows: int, *, seed: int = 20261124, invalid_share: float = 0.02,
                        duplicate_share: float = 0.01, likely_duplicate_share: float = 0.005,
                        today: date | None = None, household_prefix: str = "HH") -> GeneratedFile:
    """Write `rows` people (plus the header) to `path`; shares are of all rows, rounded to whole rows.

    Household codes are `household_prefix` and a base-36 counter: files meant for the same
    registry need different prefixes, or their households are the same households.
    """
    shares = (invalid_share, duplicate_share, likely_duplicate_share)
    if rows < 0:
        raise ValueError(f"rows must not be negative, got {rows}")
    if min(shares) < 0 or sum(shares) > 0.25:
        raise ValueError(f"shares must be non-negative and together at most 0.25, got {shares}")
    registry = _Registry(random.Random(seed), today or date.today(), rows, shares, household_prefix)
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write(",".join(HEADER) + "\n")
        lines: list[str] = []
        while registry.rows_made < rows:
            lines.extend(",".join(row) + "\n" for row in registry.household(rows - registry.rows_made))
            if len(lines) >= CHUNK_ROWS:
                handle.write("".join(lines))
                lines.clear()
        handle.write("".join(lines))
    return GeneratedFile(path=path, rows=registry.rows_made, households=registry.households,
                         invalid_rows=registry.made[_INVALID], duplicate_rows=registry.made[_DUPLICATE],
                         likely_duplicate_rows=registry.made[_LIKELY],
                         planted_duplicates=tuple(registry.planted))


def _years_before(day: date, years: int) -> date:
    """The same day `years` earlier (later if negative); 29 February becomes the 28th where needed."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February in a year that has none
        return day.replace(year=day.year - years, day=28)


def _group_code(prefix: str, number: int) -> str:
    """The prefix and the number in base 36, six digits: HH000001 ... HHZZZZZZ."""
    digits = ""
    while number:
        number, digit = divmod(number, 36)
        digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[digit] + digits
    return prefix + digits.rjust(6, "0")


def _age_range(relation: str, head_age: int) -> tuple[int, int]:
    """The youngest and oldest plausible age of a household member; youngest > oldest if none is."""
    if relation == "spouse":
        return max(18, head_age - 10), min(95, head_age + 10)
    if relation == "child":
        return max(0, head_age - 45), head_age - 16
    if relation == "grandchild":
        return max(0, head_age - 80), head_age - 36
    if relation == "parent":
        return head_age + 16, min(105, head_age + 45)
    if relation == "grandparent":
        return head_age + 34, min(105, head_age + 60)
    if relation == "sibling":
        return max(0, head_age - 12), min(MAX_AGE, head_age + 12)
    return 0, 90


def _with_transposition(name: str, rng: random.Random) -> str:
    """The name with two neighbouring, different letters (never the first) swapped; the name itself if none."""
    positions = [i for i in range(1, len(name) - 1) if name[i].isalpha() and name[i + 1].isalpha()
                 and name[i] != name[i + 1]]
    if not positions:
        return _with_typo(name, rng)
    i = rng.choice(positions)
    return name[:i] + name[i + 1] + name[i] + name[i + 2:]


def _without_accents(name: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c))


def _slipped_dob(dob: str, rng: random.Random, today: date) -> str | None:
    """The date with one digit of YYYYMMDD changed (the year's, the month's or the day's last), still a real date
    before `today`; None if no such slip was found."""
    digits = dob.replace("-", "")
    for _ in range(30):
        position = rng.choice((3, 5, 7))
        digit = rng.choice([d for d in "0123456789" if d != digits[position]])
        text = digits[:position] + digit + digits[position + 1:]
        try:
            slipped = date(int(text[:4]), int(text[4:6]), int(text[6:]))
        except ValueError:
            continue
        if slipped < today:
            return slipped.isoformat()
    return None


def _with_typo(name: str, rng: random.Random) -> str:
    """The name with one letter (never the first) replaced by a different lowercase letter."""
    positions = [i for i in range(1, len(name)) if name[i].isalpha()]
    position = rng.choice(positions)
    letter = rng.choice([c for c in _TYPO_LETTERS if c != name[position]])
    return name[:position] + letter + name[position + 1:]


class _Registry:
    """The generator's state: random source, date tables, pools of earlier people, running counts."""

    def __init__(self, rng: random.Random, today: date, rows: int, shares: tuple[float, float, float],
                 household_prefix: str) -> None:
        self.rng = rng
        self.household_prefix = household_prefix
        self.rows_made = 0
        self.households = 0
        self.people_numbered = 0
        self.nid_offset = rng.randrange(10**9)
        # Age a (in whole years at `today`) means days-before-today in [age_start[a], age_start[a + 1]).
        self.age_start = [(today - _years_before(today, age)).days for age in range(MAX_AGE + 2)]
        first_day = today.toordinal()
        self.dob_by_days_before = [date.fromordinal(first_day - days).isoformat()
                                   for days in range(self.age_start[MAX_AGE + 1])]
        self.adult_dob = _years_before(today, 18).isoformat()  # ISO dates compare as strings
        a_year_later = _years_before(today, -1).isoformat()
        self.invalid_values = [(column, a_year_later if value is None else value) for column, value in INVALID_KINDS]
        self.nid_pool: list[str] = []
        self.today = today
        self.people_by_location: list[list[tuple[str, str, str, int, str, str, int]]] = [[] for _ in LOCATIONS]
        self.planted: list[tuple[int, int, str]] = []
        self.row = 0  # the data row (from 1) of the person being made
        # Bad rows are spread evenly over the first 90 % of the file, so the last households can catch up.
        self.targets = [int(rows * share + 0.5) for share in shares]
        self.made = [0, 0, 0]
        self.span = max(1, rows * 9 // 10)
        self.due_at = [self._due_at(kind) for kind in range(3)]

    def _due_at(self, kind: int) -> int:
        """The row index from which the next bad row of this kind is due."""
        made, target = self.made[kind], self.targets[kind]
        return made * self.span // target if made < target else _NEVER

    def household(self, rows_left: int) -> list[list[str]]:
        """The next household's rows, HEAD first; at most `rows_left` of them."""
        rng = self.rng
        self.households += 1
        size = min(rng.choice(_HOUSEHOLD_SIZES), rows_left)
        location_index = rng.randrange(len(LOCATIONS))
        place = (_group_code(self.household_prefix, self.households), *LOCATIONS[location_index])
        head_age = rng.randrange(18, 86)
        head_sex = "F" if rng.random() < 0.45 else "M"
        head_last = rng.choice(LAST_NAMES)
        self.row = self.rows_made + 1
        head = self._person(place, location_index, "HEAD", "1", head_sex, head_age, head_last, valid=True)
        members = [head]
        adults: list[list[str]] = []
        spouse_sex = ""
        children = 0
        for slot in range(1, size):
            self.row = self.rows_made + slot + 1
            if self.rows_made + slot >= min(self.due_at):
                members.append(self._bad_row(place, location_index, head_age, head_last))
                continue
            if slot == 1 and rng.random() < 0.65:
                relation = "spouse"
                spouse_sex = head_sex if rng.random() < 0.08 else ("M" if head_sex == "F" else "F")
            else:
                relation = rng.choice(_RELATIONS)
            children += relation == "child"
            member = self._member(place, location_index, relation, spouse_sex, head_age, head_last, valid=True)
            members.append(member)
            if member[DOB] <= self.adult_dob:
                adults.append(member)
        if adults and rng.random() < _SECONDARY_CHANCE:
            rng.choice(adults)[RECIPIENT] = "2"
        extra_children = rng.choice((0, 0, 0, 1, 1, 2, 3)) if head_age >= 30 else 0
        head[NUMBER_OF_CHILDREN] = str(min(12, children + extra_children))
        self.rows_made += size
        return members

    def _member(self, place: tuple[str, ...], location_index: int, relation: str, spouse_sex: str,
                head_age: int, head_last: str, *, valid: bool) -> list[str]:
        """A household member of the given relation to the head (falling back to OTHER RELATIVE)."""
        rng = self.rng
        youngest, oldest = _age_range(relation, head_age)
        if youngest > oldest:
            relation = "other"
            youngest, oldest = _age_range(relation, head_age)
        sex = spouse_sex if relation == "spouse" else ("F" if rng.random() < 0.5 else "M")
        if relation in _GENDER_NEUTRAL and rng.random() < 0.01:
            sex = "O"
        role = _ROLE_NAMES[relation][sex != "F"]
        last = head_last if rng.random() < _SHARES_LAST_NAME[relation] else rng.choice(LAST_NAMES)
        age = rng.randrange(youngest, oldest + 1)
        return self._person(place, location_index, role, "0", sex, age, last, valid=valid)

    def _person(self, place: tuple[str, ...], location_index: int, role: str, recipient: str, sex: str,
                age: int, last: str, *, valid: bool) -> list[str]:
        """One person's row; a valid person is remembered as someone later rows may duplicate."""
        rng = self.rng
        if sex == "O":
            first = rng.choice(FEMALE_FIRST_NAMES if rng.random() < 0.5 else MALE_FIRST_NAMES)
        else:
            first = rng.choice(FEMALE_FIRST_NAMES if sex == "F" else MALE_FIRST_NAMES)
        dob = self.dob_by_days_before[rng.randrange(self.age_start[age], self.age_start[age + 1])]
        national_id = self._national_id() if role == "HEAD" or rng.random() >= (0.4 if age < 18 else 0.04) else ""
        email = ""
        if age >= 16 and rng.random() < 0.38:
            email = f"{_EMAIL_PARTS[first]}.{_EMAIL_PARTS[last]}{rng.randrange(1, 1000)}@example.org"
        row = [first, last, dob, sex, place[0], recipient, role, national_id, self._phone(age), email,
               place[1], place[2], place[3], *self._circumstances(age)]
        if valid:
            self._remember(row, age, location_index)
        return row

    def _remember(self, row: list[str], age: int, location_index: int) -> None:
        """Keep the person in the (bounded, randomly replaced) pools that bad rows copy from."""
        rng = self.rng
        people = self.people_by_location[location_index]
        entry = (row[FIRST], row[LAST], row[SEX], age, row[DOB], row[PHONE], self.row)
        if len(people) < _POOL_SIZE:
            people.append(entry)
        else:
            people[rng.randrange(_POOL_SIZE)] = entry
        if row[NATIONAL_ID]:
            if len(self.nid_pool) < _POOL_SIZE:
                self.nid_pool.append(row[NATIONAL_ID])
            else:
                self.nid_pool[rng.randrange(_POOL_SIZE)] = row[NATIONAL_ID]

    def _national_id(self) -> str:
        """`NID` and nine digits, never the same twice in a file (an affine bijection of a counter)."""
        self.people_numbered += 1
        return f"NID{(self.people_numbered * 387_420_489 + self.nid_offset) % 1_000_000_000:09d}"

    def _phone(self, age: int) -> str:
        rng = self.rng
        if rng.random() < (0.9 if age < 15 else 0.15):
            return ""
        return f"+{rng.choice(_COUNTRY_CODES)}{rng.randrange(100_000_000, 1_000_000_000)}"

    def _circumstances(self, age: int) -> tuple[str, str, str, str, str]:
        """able_bodied, educated_level, number_of_children, disability, income."""
        rng = self.rng
        disability = rng.choice(_DISABILITY_DRAW)
        able = "False" if disability in ("moderate", "severe") or rng.random() < 0.03 else "True"
        children = "0" if age < 20 or rng.random() < 0.9 else str(rng.randrange(1, 5))
        if age < 15:
            income = "" if rng.random() < 0.6 else "0.00"
        elif rng.random() < 0.25:
            income = ""
        else:
            cents = int(rng.random() ** 3 * 5_000_000)
            income = f"{cents // 100}.{cents % 100:02d}"
        return able, rng.choice(_EDUCATION_BY_AGE[age]), children, disability, income

    def _bad_row(self, place: tuple[str, ...], location_index: int, head_age: int, head_last: str) -> list[str]:
        """The most overdue kind of bad row, as a (non-HEAD) member of the current household."""
        kind = self.due_at.index(min(self.due_at))
        if kind == _LIKELY:
            row = self._likely_duplicate(place, location_index)
        else:
            relation = self.rng.choice(_RELATIONS)
            row = self._member(place, location_index, relation, "", head_age, head_last, valid=False)
            if kind == _INVALID:
                column, value = self.invalid_values[self.made[_INVALID] % len(self.invalid_values)]
                row[column] = value
            else:
                row[NATIONAL_ID] = self.rng.choice(self.nid_pool)
        self.made[kind] += 1
        self.due_at[kind] = self._due_at(kind)
        return row

    def _likely_duplicate(self, place: tuple[str, ...], location_index: int) -> list[str]:
        """An earlier valid person registered again in this household, the next kind of DUPLICATE_KINDS in turn:
        the same sex; names, date of birth, place and phone as the kind says; usually no national_id."""
        rng = self.rng
        kind = DUPLICATE_KINDS[self.made[_LIKELY] % len(DUPLICATE_KINDS)]
        others = [people for index, people in enumerate(self.people_by_location) if people and index != location_index]
        if kind == "moved" and others:  # from anywhere else: this household's place is the new one
            first, last, sex, age, dob, phone, original = rng.choice(rng.choice(others))
            first, last = _without_accents(first), _without_accents(last)
        else:
            people = self.people_by_location[location_index]
            with_phone = [person for person in people if person[5]] if kind == "same_phone" else []
            first, last, sex, age, dob, phone, original = rng.choice(with_phone or people)
        if kind in ("typo", "same_phone"):
            first, last = (_with_typo(first, rng), last) if rng.random() < 0.5 else (first, _with_typo(last, rng))
        elif kind == "transposed":
            first, last = (_with_transposition(first, rng), last) if rng.random() < 0.5 \
                else (first, _with_transposition(last, rng))
        elif kind == "day_month_swapped":
            year, month, day = dob.split("-")
            dob = f"{year}-{day}-{month}" if day != month and int(day) <= 12 else dob
            if dob.split("-")[1] == month:  # no swap possible: a mistyped letter instead
                first = _with_typo(first, rng)
        elif kind == "dob_digit":
            slipped = _slipped_dob(dob, rng, self.today)
            dob, first = (slipped, first) if slipped else (dob, _with_typo(first, rng))
        elif kind == "middle_name":
            first = f"{first} {rng.choice(FEMALE_FIRST_NAMES if sex == 'F' else MALE_FIRST_NAMES)}"
        if kind != "same_phone":
            phone = self._phone(age) if rng.random() < 0.5 else ""
        self.planted.append((self.row, original, kind))
        role = "OTHER RELATIVE" if rng.random() < 0.5 else "NOT RELATED"
        national_id = self._national_id() if rng.random() < 0.2 else ""
        return [first, last, dob, sex, place[0], "0", role, national_id, phone, "",
                place[1], place[2], place[3], *self._circumstances(age)]
