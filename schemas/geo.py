"""Country and UN M49 sub-region of a recipient, as data, for the canonical events.

Providers rarely state the country. The recipient network's MCC (ITU-T E.212) is the
best evidence when given, because it names the network that took the message; otherwise
the E.164 calling code of the number, longest prefix first. Inside the North American
Numbering Plan (+1) the area code decides: Canada and the Caribbean/Pacific members
have their own; every other +1 number is the US. Shared codes go to the main country
(+7 to Russia except Kazakhstan's +76/+77, +590 to Guadeloupe, +599 to Curaçao except
Bonaire's 3/4/7, +262 to Réunion except Mayotte's 269/639). Non-geographic codes (+800,
+870, +881 …) name no country.

Regions are the M49 sub-regions ("Northern America", "Western Europe", "Sub-Saharan
Africa", "Latin America and the Caribbean" …); Taiwan and Kosovo, which M49 does not
list, are placed where the M49 region of their neighbours puts them.
"""

from __future__ import annotations

from collections.abc import Mapping

#: UN M49 sub-region -> ISO 3166-1 alpha-2 codes of its countries and territories.
SUBREGIONS: Mapping[str, str] = {
    "Northern Africa": "DZ EG EH LY MA SD TN",
    "Sub-Saharan Africa": (
        "IO BI KM DJ ER ET TF KE MG MW MU YT MZ RE RW SC SO SS UG TZ ZM ZW "  # eastern
        "AO CM CF TD CG CD GQ GA ST "  # middle
        "BW SZ LS NA ZA "  # southern
        "BJ BF CV CI GM GH GN GW LR ML MR NE NG SH SN SL TG"  # western
    ),
    "Latin America and the Caribbean": (
        "AI AG AW BS BB BQ VG KY CU CW DM DO GD GP HT JM MQ MS PR BL KN LC MF VC SX TT TC VI "
        "BZ CR SV GT HN MX NI PA "
        "AR BO BV BR CL CO EC FK GF GY PY PE GS SR UY VE"
    ),
    "Northern America": "BM CA GL PM US",
    "Central Asia": "KZ KG TJ TM UZ",
    "Eastern Asia": "CN HK MO KP JP MN KR TW",
    "South-eastern Asia": "BN KH ID LA MY MM PH SG TH TL VN",
    "Southern Asia": "AF BD BT IN IR MV NP PK LK",
    "Western Asia": "AM AZ BH CY GE IQ IL JO KW LB OM QA SA PS SY TR AE YE",
    "Eastern Europe": "BY BG CZ HU PL MD RO RU SK UA",
    "Northern Europe": "AX DK EE FO FI GG IS IE IM JE LV LT NO SJ SE GB",
    "Southern Europe": "AL AD BA HR GI GR VA IT MT ME MK PT SM RS SI ES XK",
    "Western Europe": "AT BE FR DE LI LU MC NL CH",
    "Australia and New Zealand": "AU CX CC HM NZ NF",
    "Melanesia": "FJ NC PG SB VU",
    "Micronesia": "GU KI MH FM NR MP PW UM",
    "Polynesia": "AS CK PF NU PN WS TK TO TV WF",
}

#: ISO 3166-1 alpha-2 -> M49 sub-region.
REGION: Mapping[str, str] = {
    country: region for region, members in SUBREGIONS.items() for country in members.split()
}

#: E.164 country calling code (and a few longer prefixes) -> ISO country.
CALLING_CODES: Mapping[str, str] = {
    "1": "US",
    "7": "RU", "76": "KZ", "77": "KZ",
    "20": "EG", "211": "SS", "212": "MA", "213": "DZ", "216": "TN", "218": "LY",
    "220": "GM", "221": "SN", "222": "MR", "223": "ML", "224": "GN", "225": "CI",
    "226": "BF", "227": "NE", "228": "TG", "229": "BJ", "230": "MU", "231": "LR",
    "232": "SL", "233": "GH", "234": "NG", "235": "TD", "236": "CF", "237": "CM",
    "238": "CV", "239": "ST", "240": "GQ", "241": "GA", "242": "CG", "243": "CD",
    "244": "AO", "245": "GW", "246": "IO", "247": "SH", "248": "SC", "249": "SD",
    "250": "RW", "251": "ET", "252": "SO", "253": "DJ", "254": "KE", "255": "TZ",
    "256": "UG", "257": "BI", "258": "MZ", "260": "ZM", "261": "MG",
    "262": "RE", "262269": "YT", "262639": "YT",
    "263": "ZW", "264": "NA", "265": "MW", "266": "LS", "267": "BW", "268": "SZ",
    "269": "KM", "27": "ZA", "290": "SH", "291": "ER", "297": "AW", "298": "FO",
    "299": "GL",
    "30": "GR", "31": "NL", "32": "BE", "33": "FR", "34": "ES", "350": "GI", "351": "PT",
    "352": "LU", "353": "IE", "354": "IS", "355": "AL", "356": "MT", "357": "CY",
    "358": "FI", "35818": "AX", "359": "BG", "36": "HU", "370": "LT", "371": "LV",
    "372": "EE", "373": "MD", "374": "AM", "375": "BY", "376": "AD", "377": "MC",
    "378": "SM", "379": "VA", "380": "UA", "381": "RS", "382": "ME", "383": "XK",
    "385": "HR", "386": "SI", "387": "BA", "389": "MK", "39": "IT", "3906698": "VA",
    "40": "RO", "41": "CH", "420": "CZ", "421": "SK", "423": "LI", "43": "AT",
    "44": "GB", "441481": "GG", "441534": "JE", "441624": "IM",
    "45": "DK", "46": "SE", "47": "NO", "4779": "SJ", "48": "PL", "49": "DE",
    "500": "FK", "501": "BZ", "502": "GT", "503": "SV", "504": "HN", "505": "NI",
    "506": "CR", "507": "PA", "508": "PM", "509": "HT", "51": "PE", "52": "MX",
    "53": "CU", "54": "AR", "55": "BR", "56": "CL", "57": "CO", "58": "VE",
    "590": "GP", "591": "BO", "592": "GY", "593": "EC", "594": "GF", "595": "PY",
    "596": "MQ", "597": "SR", "598": "UY",
    "599": "CW", "5993": "BQ", "5994": "BQ", "5997": "BQ",
    "60": "MY", "61": "AU", "6189162": "CC", "6189164": "CX", "62": "ID", "63": "PH",
    "64": "NZ", "65": "SG", "66": "TH", "670": "TL", "672": "NF", "673": "BN",
    "674": "NR", "675": "PG", "676": "TO", "677": "SB", "678": "VU", "679": "FJ",
    "680": "PW", "681": "WF", "682": "CK", "683": "NU", "685": "WS", "686": "KI",
    "687": "NC", "688": "TV", "689": "PF", "690": "TK", "691": "FM", "692": "MH",
    "81": "JP", "82": "KR", "84": "VN", "850": "KP", "852": "HK", "853": "MO",
    "855": "KH", "856": "LA", "86": "CN", "880": "BD", "886": "TW",
    "90": "TR", "91": "IN", "92": "PK", "93": "AF", "94": "LK", "95": "MM", "960": "MV",
    "961": "LB", "962": "JO", "963": "SY", "964": "IQ", "965": "KW", "966": "SA",
    "967": "YE", "968": "OM", "970": "PS", "971": "AE", "972": "IL", "973": "BH",
    "974": "QA", "975": "BT", "976": "MN", "977": "NP", "98": "IR", "992": "TJ",
    "993": "TM", "994": "AZ", "995": "GE", "996": "KG", "998": "UZ",
}  # fmt: skip

#: Calling codes that belong to no country (freephone, satellite, global services).
NON_GEOGRAPHIC: frozenset[str] = frozenset(
    {"800", "808", "870", "878", "881", "882", "883", "888", "979"}
)

#: NANP area codes outside the US: Canada (all, incl. non-geographic 600/622…) first.
_CANADA = (
    "204 226 236 249 250 257 263 289 306 343 354 365 367 368 382 403 416 418 428 431 "
    "437 438 450 468 474 506 514 519 548 579 581 584 587 604 613 639 647 672 683 705 "
    "709 742 753 778 780 782 807 819 825 867 873 879 902 905 942 "
    "600 622 633 644 655 677 688"
)
NANP_AREAS: Mapping[str, str] = {
    **{area: "CA" for area in _CANADA.split()},
    "242": "BS", "246": "BB", "264": "AI", "268": "AG", "284": "VG", "340": "VI",
    "345": "KY", "441": "BM", "473": "GD", "649": "TC", "658": "JM", "876": "JM",
    "664": "MS", "670": "MP", "671": "GU", "684": "AS", "721": "SX", "758": "LC",
    "767": "DM", "784": "VC", "787": "PR", "939": "PR", "809": "DO", "829": "DO",
    "849": "DO", "868": "TT", "869": "KN",
}  # fmt: skip

#: ITU-T E.212 mobile country code -> ISO country (shared MCCs -> the main country).
MCC: Mapping[str, str] = {
    "202": "GR", "204": "NL", "206": "BE", "208": "FR", "212": "MC", "213": "AD",
    "214": "ES", "216": "HU", "218": "BA", "219": "HR", "220": "RS", "221": "XK",
    "222": "IT", "225": "VA", "226": "RO", "228": "CH", "230": "CZ", "231": "SK",
    "232": "AT", "234": "GB", "235": "GB", "238": "DK", "240": "SE", "242": "NO",
    "244": "FI", "246": "LT", "247": "LV", "248": "EE", "250": "RU", "255": "UA",
    "257": "BY", "259": "MD", "260": "PL", "262": "DE", "266": "GI", "268": "PT",
    "270": "LU", "272": "IE", "274": "IS", "276": "AL", "278": "MT", "280": "CY",
    "282": "GE", "283": "AM", "284": "BG", "286": "TR", "288": "FO", "290": "GL",
    "292": "SM", "293": "SI", "294": "MK", "295": "LI", "297": "ME",
    "302": "CA", "308": "PM", "310": "US", "311": "US", "312": "US", "313": "US",
    "314": "US", "315": "US", "316": "US", "330": "PR", "332": "VI", "334": "MX",
    "338": "JM", "340": "GP", "342": "BB", "344": "AG", "346": "KY", "348": "VG",
    "350": "BM", "352": "GD", "354": "MS", "356": "KN", "358": "LC", "360": "VC",
    "362": "CW", "363": "AW", "364": "BS", "365": "AI", "366": "DM", "368": "CU",
    "370": "DO", "372": "HT", "374": "TT", "376": "TC",
    "400": "AZ", "401": "KZ", "402": "BT", "404": "IN", "405": "IN", "406": "IN",
    "410": "PK", "412": "AF", "413": "LK", "414": "MM", "415": "LB", "416": "JO",
    "417": "SY", "418": "IQ", "419": "KW", "420": "SA", "421": "YE", "422": "OM",
    "424": "AE", "425": "IL", "426": "BH", "427": "QA", "428": "MN", "429": "NP",
    "430": "AE", "431": "AE", "432": "IR", "434": "UZ", "436": "TJ", "437": "KG",
    "438": "TM", "440": "JP", "441": "JP", "450": "KR", "452": "VN", "454": "HK",
    "455": "MO", "456": "KH", "457": "LA", "460": "CN", "461": "CN", "466": "TW",
    "467": "KP", "470": "BD", "472": "MV",
    "502": "MY", "505": "AU", "510": "ID", "514": "TL", "515": "PH", "520": "TH",
    "525": "SG", "528": "BN", "530": "NZ", "536": "NR", "537": "PG", "539": "TO",
    "540": "SB", "541": "VU", "542": "FJ", "543": "WF", "544": "AS", "545": "KI",
    "546": "NC", "547": "PF", "548": "CK", "549": "WS", "550": "FM", "551": "MH",
    "552": "PW", "553": "TV", "554": "TK", "555": "NU",
    "602": "EG", "603": "DZ", "604": "MA", "605": "TN", "606": "LY", "607": "GM",
    "608": "SN", "609": "MR", "610": "ML", "611": "GN", "612": "CI", "613": "BF",
    "614": "NE", "615": "TG", "616": "BJ", "617": "MU", "618": "LR", "619": "SL",
    "620": "GH", "621": "NG", "622": "TD", "623": "CF", "624": "CM", "625": "CV",
    "626": "ST", "627": "GQ", "628": "GA", "629": "CG", "630": "CD", "631": "AO",
    "632": "GW", "633": "SC", "634": "SD", "635": "RW", "636": "ET", "637": "SO",
    "638": "DJ", "639": "KE", "640": "TZ", "641": "UG", "642": "BI", "643": "MZ",
    "645": "ZM", "646": "MG", "647": "RE", "648": "ZW", "649": "NA", "650": "MW",
    "651": "LS", "652": "BW", "653": "SZ", "654": "KM", "655": "ZA", "657": "ER",
    "658": "SH", "659": "SS",
    "702": "BZ", "704": "GT", "706": "SV", "708": "HN", "710": "NI", "712": "CR",
    "714": "PA", "716": "PE", "722": "AR", "724": "BR", "730": "CL", "732": "CO",
    "734": "VE", "736": "BO", "738": "GY", "740": "EC", "742": "GF", "744": "PY",
    "746": "SR", "748": "UY", "750": "FK",
}  # fmt: skip

_LONGEST_CODE = max(len(code) for code in CALLING_CODES)


def _digits(number: str) -> str:
    digits = "".join(c for c in number if "0" <= c <= "9")
    if digits.startswith("00"):  # international call prefix instead of '+'
        digits = digits[2:]
    return digits


def country_from_e164(number: str | None) -> str | None:
    """ISO country of an E.164 number by its calling code (longest prefix wins)."""
    if not number:
        return None
    digits = _digits(number)
    if not 7 <= len(digits) <= 15 or digits[0] == "0" or digits[:3] in NON_GEOGRAPHIC:
        return None
    if digits[0] == "1":
        return NANP_AREAS.get(digits[1:4], "US")
    for size in range(min(_LONGEST_CODE, len(digits)), 0, -1):
        country = CALLING_CODES.get(digits[:size])
        if country is not None:
            return country
    return None


def country_from_mcc(mcc: str | None) -> str | None:
    """ISO country of a mobile country code (an MCC+MNC string works too)."""
    if not mcc:
        return None
    code = mcc.strip()
    if len(code) < 3 or not code[:3].isdigit():
        return None
    return MCC.get(code[:3])


def region_of(country: str | None) -> str | None:
    """UN M49 sub-region of an ISO 3166-1 alpha-2 country."""
    if not country:
        return None
    return REGION.get(country.strip().upper())


def locate(
    recipient: str | None, mcc: str | None, country: str | None
) -> tuple[str | None, str | None]:
    """(country, region): the provider's country, else the MCC's, else the number's."""
    stated = country.strip().upper() if country else ""
    valid = len(stated) == 2 and stated.isascii() and stated.isalpha()
    found = (stated if valid else None) or country_from_mcc(mcc) or country_from_e164(recipient)
    return found, region_of(found)
