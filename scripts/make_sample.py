"""Generate labelgate's bundled sample dataset (synthetic customer-support tickets).

Writes three files under ``data/``:

* ``sample.csv``        -- ``id,text,label``: ~400 training rows with injected label noise
                           and a handful of deliberately bad rows (see below).
* ``sample_truth.csv``  -- ``id,true_label,is_label_error,note``: the answer key, one row
                           per ``sample.csv`` row.
* ``sample_test.csv``   -- ``id,text,label``: ~120 clean, correctly labelled held-out rows.

Method
------
Every text is written by this script; nothing is copied from any external dataset.
A message is assembled from hand-written fragments kept in module-level lists:

    [opener] + problem statement + [0-2 details] + [closer]

* ``PROBLEMS`` holds 60+ problem statements per class (``billing``, ``technical``,
  ``shipping``, ``account``). Problems are drawn from a per-class shuffled "deck" so each
  one is used about equally often rather than a few dominating.
* Openers, details and closers come in tones (polite / neutral / angry; "terse" messages
  are a bare problem statement). Details are partly class-specific, partly generic.
* ``{slots}`` such as ``{order}``, ``{amount}``, ``{product}``, ``{date}`` are filled with
  random but plausible values (``#48213``, ``$29.99``, ...), consistent within one message.
* Surface noise: about half the messages are all-lowercase, the rest sentence-cased;
  ~18% get one realistic typo; angry ones may SHOUT a word and end with ``!``.
* ``AMBIGUOUS`` holds hand-written messages that genuinely straddle two classes
  (e.g. charged twice because the app crashed); about 5% of rows come from there, and
  they carry their primary class as label (they are not label errors).

Label noise: 39 ordinary rows get a wrong label drawn uniformly from the other three
classes, plus one conflicting duplicate (see below) = 40 label errors (10% of 400).

Deliberately bad / special rows (all recorded in the truth file's ``note`` column):

* 2 rows with blank text (one empty, one whitespace-only)        -> quarantined
* 1 row with an empty label                                      -> quarantined
* 1 valid row whose text contains ``<script>alert(1)</script>``  -> tests HTML escaping
* 2 valid rows that exactly duplicate another row's text, same label
* 1 valid row that exactly duplicates another row's text with a different (wrong) label
* 2 valid rows whose label has stray whitespace (``" billing"``, ``"shipping "``)

Determinism: all randomness comes from ``random.Random`` instances seeded from ``SEED``
via SHA-256, and output uses the ``csv`` module with ``lineterminator="\\n"`` and UTF-8,
so ``python scripts/make_sample.py`` rewrites byte-identical files on every run.
Standard library only.
"""

from __future__ import annotations

import csv
import hashlib
import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

SEED = 20240611
ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "data"

CLASSES: list[str] = ["billing", "technical", "shipping", "account"]
#: intended (true) class counts of sample.csv, special rows included
TRAIN_COUNTS: dict[str, int] = {"billing": 120, "technical": 105, "shipping": 95, "account": 80}
#: class counts of the clean held-out file
TEST_COUNTS: dict[str, int] = {"billing": 36, "technical": 32, "shipping": 28, "account": 24}
N_AMBIGUOUS = 20
N_RANDOM_NOISE = 39  # + 1 conflicting duplicate = 40 label errors
MIN_WORDS, MAX_WORDS = 5, 60
SCRIPT_TAG = "<script>alert(1)</script>"
#: classes of ordinary rows that get an exact-duplicate copy (same label / conflicting label)
DUP_SAME_CLASSES: list[str] = ["billing", "shipping"]
DUP_CONFLICT_CLASS = "technical"

# Fragment and value tables are kept compact (one line holds several entries) for reading.
# fmt: off

# --------------------------------------------------------------------------------------
# Slot values
# --------------------------------------------------------------------------------------

PRODUCTS: list[str] = [
    "aero 2 headphones", "nimbus smart speaker", "trailpro backpack", "orbit x router",
    "lumen desk lamp", "pulse fitness band", "breeze air purifier", "vista 4k webcam",
    "kettle pro", "flux phone case", "halo doorbell cam", "echoline soundbar",
    "glide standing desk", "brewmaster coffee grinder", "qi charging pad", "zen robot vacuum",
    "arc gaming mouse", "tempo smart watch", "snug heated blanket", "pixelframe photo frame",
    "stride running shoes", "nova tablet", "chill mini fridge", "spark e-bike battery",
]
#: electronic products only, for technical problems (``{gadget}``)
GADGETS: list[str] = [
    "aero 2 headphones", "nimbus smart speaker", "orbit x router", "lumen desk lamp", "pulse fitness band",
    "breeze air purifier", "vista 4k webcam", "kettle pro", "halo doorbell cam", "echoline soundbar",
    "qi charging pad", "zen robot vacuum", "arc gaming mouse", "tempo smart watch", "pixelframe photo frame",
    "nova tablet",
]
#: camera products, for camera-specific problems (``{camera}``)
CAMERAS: list[str] = ["halo doorbell cam", "vista 4k webcam", "sentry garden cam"]
PLANS: list[str] = ["premium", "pro", "family", "basic", "plus", "business", "annual", "student"]
CARRIERS: list[str] = ["ups", "fedex", "usps", "dhl", "the courier", "royal mail", "dpd"]
DEVICES: list[str] = [
    "iphone 13", "android phone", "ipad", "windows laptop", "macbook", "chromebook",
    "pixel 7", "samsung tablet", "galaxy s22", "work pc",
]
BROWSERS: list[str] = ["chrome", "firefox", "safari", "edge", "brave"]
ERRORS: list[str] = [
    "error 500", "error code e-104", '"something went wrong"', "a blank white screen",
    "err_connection_reset", "error 0x80070005", '"unexpected token"', "error 403",
    '"session expired"', "error code 17",
]
CITIES: list[str] = [
    "denver", "leeds", "austin", "toronto", "glasgow", "phoenix", "bristol", "portland",
    "dublin", "melbourne", "ohio", "manchester",
]
COUNTRIES: list[str] = ["canada", "ireland", "norway", "new zealand", "mexico", "the uae", "poland"]
MONTHS: list[str] = [
    "january", "february", "march", "april", "may", "june", "july", "august",
    "september", "october", "november", "december",
]
FIRST_NAMES: list[str] = [
    "Sarah", "Tom", "Priya", "Marco", "Aisha", "Ben", "Chen", "Lucy", "Omar", "Dana",
    "Kevin", "Ines", "Raj", "Hannah", "Jorge", "Mel", "Sven", "Grace",
]
SURNAMES: list[str] = ["smith", "patel", "nguyen", "okafor", "garcia", "kowalski", "brown", "lee"]
EMAIL_DOMAINS: list[str] = ["gmail.com", "outlook.com", "yahoo.com", "icloud.com", "proton.me"]

# --------------------------------------------------------------------------------------
# Problem statements: 60+ per class, lowercase, no final punctuation
# --------------------------------------------------------------------------------------

PROBLEMS: dict[str, list[str]] = {
    "billing": [
        "i was charged twice for order {order}",
        "why did you take {amount} from my account on {date}",
        "i cancelled my {plan} subscription but got billed again this month",
        "can i get a refund for order {order}, i sent it back {days} days ago",
        "my invoice says {amount} but the checkout total was {amount2}",
        "the promo code was accepted but the discount never came off the total",
        "please update the card on file, my {card} has expired",
        "there's a charge of {amount} on my statement that i don't recognise",
        "still waiting on the refund you promised me on {date}",
        "how do i get a vat invoice for my company",
        "you charged me the annual price when i clearly picked monthly",
        "my free trial turned into a paid plan without any warning",
        "my card keeps getting declined at payment even though the bank says it's fine",
        "can you explain the extra {amount} fee on my last bill",
        "i'd like to switch from monthly to yearly billing",
        "the price dropped to {amount} a day after i bought the {product}, can i get the difference back?",
        "the refund for {order} shows as processed but nothing has reached my bank",
        "i need a copy of the receipt for {order} for my expenses",
        "why is there a pending authorisation of {amount} on my card",
        "my gift card balance wasn't applied to the order",
        "you took the payment for {order} three times",
        "can i pay for the {product} in instalments",
        "the sales tax on my last order looks wrong",
        "my store credit of {amount} has just disappeared",
        "i was told i'd get a partial refund of {amount}, where is it?",
        "do you take paypal? i only see card options at payment",
        "i want to cancel my subscription and get this month's money back",
        "i was charged in euros instead of dollars and my bank added a conversion fee",
        "the student discount wasn't applied when my plan renewed",
        "please stop charging my {card}, i ended my plan in {month}",
        "my refund went to an old card that's been closed",
        "how long do refunds normally take to show up",
        "the renewal price went up from {amount2} to {amount} without any notice",
        "can you waive the late fee on my last invoice",
        "i think i overpaid on my last bill, is there a credit on my side?",
        "our finance team needs the invoices addressed to them, not to me",
        "i returned the {product} but was only refunded half the price",
        "the coupon says 20% off but i was charged full price",
        "we're being billed for two seats but only one person uses it",
        "please send me an itemised bill for {month}",
        "there's a restocking fee taken off my refund that nobody mentioned",
        "i was charged {amount} for a plan upgrade i never asked for",
        "can i move my billing date to the 1st of the month",
        "my direct debit was taken twice this month",
        "the price match you agreed to was never credited",
        "why am i still paying the {plan} price after downgrading",
        "you charged me for an order i cancelled within the hour",
        "i want my money back, the {product} is nothing like the description",
        "how do i get refunded for the months i didn't use",
        "my bank flagged your charge of {amount} as suspicious, is it legit?",
        "i was hit with a cancellation fee that isn't in your terms",
        "my loyalty points weren't taken off the total at payment",
        "the refund status has said approved since {date} and still no money",
        "can i split one payment across two cards",
        "my invoice has the wrong company name and tax number on it",
        "the monthly fee is higher than what your pricing page says",
        "i need proof of payment for {order} for a warranty claim",
        "please reverse the duplicate payment from {date}",
        "can you confirm my payment for {order} went through, my bank shows it as pending",
        "you charged sales tax even though we sent you our exemption certificate",
        "the trial was meant to be free but you took {amount}",
        "i'd prefer the refund as store credit rather than back to my card",
        "why does my statement say {amount} when the order total was {amount2}",
        "i got billed {amount} for an add-on i removed last month",
        "can i get a refund on the {plan} plan, i signed up by accident",
        "my receipt doesn't show the discount i was promised",
    ],
    "technical": [
        "the app crashes as soon as i open it on my {device}",
        "i keep getting {error} when i try to load the dashboard",
        "my {gadget} won't connect to wifi since the last update",
        "the website just sits there loading forever on {browser}",
        "the {gadget} keeps dropping the bluetooth connection",
        "after updating to version {version} the app won't start at all",
        "sync between my phone and laptop has stopped working",
        "notifications stopped coming through on my {device}",
        "the {gadget} switches itself off after a few minutes",
        "the firmware update failed halfway and now the light just blinks red",
        "file uploads fail at 99% every single time",
        "the search bar returns nothing no matter what i type",
        "the page layout is completely broken in {browser}",
        "export to pdf gives me a blank file",
        "my {gadget} is making a loud buzzing noise",
        "the screen on the {gadget} flickers constantly",
        "your app drains my battery in about an hour",
        "i can't get the {gadget} to pair with my {device}",
        "videos won't play, it's just a spinning wheel",
        "the companion app doesn't detect the {gadget} at all",
        "the api has returned a 403 on every request since {date}",
        "dark mode makes all the text invisible",
        "the {gadget} gets really hot while it's charging",
        "voice commands stopped working after the update",
        "the settings page won't save any changes i make",
        "the app freezes whenever i try to attach a photo",
        "the {gadget} won't turn on at all, even when plugged in",
        "a week of data has vanished from the app",
        "the desktop app says license server unreachable",
        "the live feed on the {camera} lags about 10 seconds behind",
        "the touch buttons on the {gadget} don't respond",
        "the installer fails on windows 11 with {error}",
        "audio is out of sync with the picture on the tv app",
        "the charts on the reports page don't render",
        "the {gadget} won't hold a charge anymore",
        "the app won't let me scroll past the first few items",
        "the qr code setup step just times out",
        "the timer on the {gadget} resets itself randomly",
        "emails sent from the app arrive hours late",
        "the google calendar integration stopped syncing",
        "the mobile site keeps reloading in a loop",
        "the {gadget} shows an orange light and beeps three times",
        "i get a certificate warning when i open your site",
        "offline mode doesn't work, nothing loads without signal",
        "the speaker crackles at anything above half volume",
        "the import tool rejects my csv file with no explanation",
        "the home screen widget stopped updating",
        "i did a factory reset on the {gadget} and it didn't fix anything",
        "the app says no internet connection but everything else on my {device} works",
        "the {gadget} is stuck on firmware {version} and won't update",
        "keyboard shortcuts don't work on mac",
        "the driver download link on your support page is broken",
        "the map in the app is just a grey screen",
        "the sensor readings on the {gadget} are way off",
        "the app crashes whenever i rotate my {device}",
        "the remote stopped working with the {gadget}",
        "images in the gallery won't load, just grey boxes",
        "motion alerts on the {camera} go off every few seconds for no reason",
        "streaming cuts out every couple of minutes",
        "the download keeps failing with {error}",
        "the touchscreen on the {gadget} registers taps i didn't make",
        "the app hasn't opened on my {device} since {date}",
        "the app is stuck on the splash screen",
        "the {gadget} app shows {error} every time i open the settings",
        "the browser extension stopped working in {browser}",
        "printing from the app cuts off the right side of every page",
    ],
    "shipping": [
        "where is my order {order}? it's been {days} days",
        "tracking hasn't updated since {date}",
        "the {carrier} driver marked it as delivered but nothing arrived",
        "my package turned up damaged, the box was completely crushed",
        "i got the wrong item, i ordered the {product} and received something else",
        "can i change the delivery address for {order}",
        "my parcel has been stuck in customs for a week",
        "part of my order is missing, only one of the two boxes came",
        "when will {order} ship? it still says processing",
        "do you ship to {country}",
        "the delivery was left outside in the rain",
        "i chose next day delivery and it's been {days} days",
        "my order was sent back to your warehouse, why?",
        "can i collect the order from a store instead of having it delivered",
        "{carrier} says the tracking number {tracking} doesn't exist",
        "the estimated delivery date keeps getting pushed back",
        "the courier says my address doesn't exist but it's definitely correct",
        "i need a return label for the {product}",
        "the package went to my old address",
        "can you hold the delivery until i'm back on {date}",
        "how long does standard shipping take to {city}",
        "my neighbour got my parcel, it had my name but their house number",
        "the box arrived open and the {product} wasn't inside",
        "the delivery slot was 9 to 12 and nobody showed up",
        "i was told it would arrive before {date}, it's a gift",
        "the {product} i got is a different colour to the one i ordered",
        "order {order} says shipped but there's no tracking at all",
        "the {carrier} depot says they don't have my parcel",
        "can i add another item to an order that hasn't shipped yet",
        "the return i posted {days} days ago still hasn't reached you",
        "i received two of the {product} but only ordered one",
        "the driver wouldn't bring the parcel up to my flat",
        "the signed-for delivery failed because i was at work",
        "can you split the shipment so the {product} comes first",
        "the order came without the cable that's shown in the listing",
        "my parcel has said out for delivery for three days",
        "i need to rearrange the delivery for another day",
        "the glass on the {product} was smashed when i opened the box",
        "do you deliver at weekends",
        "order {order} says it was left in a pickup locker i never chose",
        "my parcel is sitting at the post office, can you get it redelivered?",
        "why is my order coming from overseas, i thought you shipped locally",
        "i'm moving next week, can you redirect {order}?",
        "the parcel weight on the tracking is far too light, i think things are missing",
        "can you send the replacement by express",
        "the label on the box got torn off and the courier can't deliver it",
        "there was no packing slip so i can't tell what's missing",
        "i ordered {days} days ago and it still hasn't left the warehouse",
        "the tracking shows it heading to {city} which isn't where i live",
        "someone tried to deliver my parcel at 3am",
        "how do i send back the {product} from abroad",
        "the courier left a card but the number on it doesn't work",
        "my preorder was supposed to ship on {date}",
        "the {product} came with no protective packaging and it's scratched",
        "is there any way to pick a delivery time slot",
        "the parcel was delivered to reception at work and they've lost it",
        "the box had someone else's order in it",
        "{carrier} says the parcel was lost in transit, what happens now?",
        "the furniture delivery team didn't bring the legs for the table",
        "i'd like to switch from home delivery to click and collect",
        "order {order} has said label created for a week",
        "the courier never turned up to collect my return",
        "the {product} arrived a week late and the box was soaking wet",
        "can you ship the {product} to a po box",
        "the tracking link in the dispatch email goes nowhere",
    ],
    "account": [
        "i can't log in, it keeps saying my password is wrong",
        "the password reset email never arrives",
        "how do i change the email address on my account",
        "i think my account was hacked, there are orders i didn't place",
        "please delete my account and all of my data",
        "my account got locked after too many attempts",
        "i'm not getting the two-factor code by text",
        "i lost the phone with my authenticator app on it",
        "how do i merge two accounts i made by accident",
        "i want to change my username",
        "my profile is showing someone else's name",
        "i can't remove an old address from my account",
        "my account says it has been suspended, why?",
        "i signed up with google and now want a normal password instead",
        "please unsubscribe me from all the marketing emails",
        "how do i add my partner to our family account",
        "the verification link says it has expired",
        "i no longer have access to the email my account is under",
        "how do i download a copy of my personal data",
        "my order history has disappeared from my account",
        "i'd like to change the phone number on my profile",
        "i got a login alert from {city} and that wasn't me",
        "how do i hand the account over to my colleague",
        "i can't update my date of birth, the field is greyed out",
        "my loyalty points have vanished from my account",
        "please reopen my account, i closed it by mistake",
        "the security questions won't accept my answers",
        "i need to remove a team member who has left the company",
        "how do i switch my account from personal to business",
        "it says {email} is already registered but i never signed up",
        "sign in with apple can't find my account",
        "i need to change the name on my account after getting married",
        "how can i turn off two-factor authentication",
        "where do i change my communication preferences",
        "my account shows the wrong country and i can't change it",
        "can i get admin rights on our team account",
        "the account was opened by my late father, how do i close it?",
        "i didn't create this account, someone used my email address",
        "how do i change my password",
        "the forgot username option asks for details i don't have",
        "can i set up a second login for my assistant",
        "my saved addresses have all gone from my profile",
        "how do i verify my identity to unlock my account",
        "please remove my old phone number, it belongs to someone else now",
        "i can't accept the invite to my company's workspace",
        "my account is linked to the wrong regional store",
        "how do i stop my kids using my account",
        "my account has said pending verification for weeks",
        "i want to change my main email but it says the address is taken",
        "someone changed my password and email address yesterday",
        "how do i sign out of all my devices",
        "please close my account, i don't use it anymore",
        "i have two accounts and my orders are split between them",
        "how do i change the display name that shows on my reviews",
        "my membership status isn't showing on my profile",
        "i can't remember which email i signed up with",
        "i got an email saying my account details were changed but it wasn't me",
        "how do i add a recovery email to my account",
        "my student verification keeps getting rejected",
        "the owner of our account has left, i need it moved to me",
        "can i have more than one delivery profile on my account",
        "please update my details, i've moved to {city}",
        "my username shows as deleted user on the forum",
        "how do i link my old store account to the new app login",
        "i want to change the account holder name to my business name",
    ],
}

# Genuinely ambiguous messages: (primary class = label used, secondary class, text).
AMBIGUOUS: list[tuple[str, str, str]] = [
    ("billing", "technical", "i was charged twice because the app crashed during checkout, please refund one of them"),
    ("billing", "technical", "the payment page showed {error} but my card was still charged {amount}"),
    ("technical", "billing", "checkout freezes when i press pay and now i have no idea whether i've been billed"),
    ("billing", "technical", "your app took {amount} for premium but none of the premium features unlocked"),
    ("billing", "account", "i deleted my account in {month} but you're still charging my card every month"),
    ("account", "billing", "i can't log in to download my invoices for {month}, the page just rejects my password"),
    ("account", "billing", "someone got into my account and bought a {product} with my saved card"),
    ("billing", "shipping",
     "you charged me {amount} for express delivery and it still took {days} days, i want the shipping fee back"),
    ("shipping", "billing", "order {order} never arrived so i want my money back"),
    ("billing", "shipping", "my return reached your warehouse {days} days ago and there's still no refund"),
    ("shipping", "account", "my orders keep going to my old address even though i updated it in my profile"),
    ("account", "shipping", "i can't see the tracking for {order} because my account won't let me sign in"),
    ("shipping", "technical", "the tracking page in your app only shows {error} so i have no idea where {order} is"),
    ("technical", "shipping", "the {gadget} arrived today but it's dead, it won't power on at all"),
    ("technical", "account", "i keep getting logged out of the app every time i switch screens"),
    ("account", "technical", "the app crashes on the two-factor screen so i can't get into my account"),
    ("billing", "account", "i was billed for a second account i never opened, same email as mine"),
    ("technical", "billing", "the discount code box gives {error} so i can't use my voucher"),
    ("shipping", "billing", "you sent the wrong {product} and charged me for return postage"),
    ("account", "technical", "the password reset link opens a page saying invalid token"),
    ("billing", "technical", "my renewal failed with {error} and now my {plan} plan has been downgraded"),
    ("shipping", "technical", "the {gadget} came with the wrong plug so i can't even set it up"),
    ("account", "billing", "i can't remove my old card from my profile, the delete button does nothing"),
    ("billing", "shipping", "i was charged for shipping on {order} even though it was over the free delivery limit"),
]

# --------------------------------------------------------------------------------------
# Openers, details, closers
# --------------------------------------------------------------------------------------

OPENERS: dict[str, list[str]] = {
    "polite": [
        "hi,", "hello,", "hi there,", "good morning,", "hey,", "hi team,", "hello support,",
        "dear customer service,", "hope you're well.", "sorry to bother you but", "hi, hoping you can help.",
        "good evening,", "hi, {name} here.", "hello, this is {name}.", "hi there, quick one.",
        "afternoon,", "hi folks,", "hello, i wonder if you can help.",
    ],
    "neutral": [
        "so", "ok so", "right,", "urgent:", "hi again,", "following up:", "not sure who to ask but",
        "question:", "hey", "re order {order}:", "quick question,", "hello",
    ],
    "angry": [
        "this is getting ridiculous.", "honestly, what is going on?", "third email about this!",
        "i am really not happy.", "seriously?", "absolutely fed up.", "not impressed at all.",
        "what a joke.", "i've been a customer for years and this is shocking.", "unbelievable.",
        "i'm losing my patience here.", "ok this is the last straw.", "come on.",
    ],
}

CLOSERS: dict[str, list[str]] = {
    "polite": [
        "thanks!", "thanks in advance.", "many thanks, {name}", "appreciate the help.",
        "thank you so much.", "cheers", "kind regards, {name}", "any help would be great.",
        "thanks for your time.", "let me know if you need anything else from me.",
        "have a good day!", "looking forward to hearing from you.", "thanks, {name}",
        "best, {name}", "thank you!",
    ],
    "neutral": [
        "thanks", "thx", "pls advise", "please help", "let me know", "ty", "asap please",
        "cheers", "what are my options?", "please get back to me",
    ],
    "angry": [
        "sort it out!", "i want this fixed today.", "otherwise i'm cancelling everything.",
        "not good enough!", "do better.", "i expect a reply today.", "this is unacceptable!",
        "i'll be leaving a review about this.", "fix it!", "i want a manager to call me.",
        "last time i order from you!", "answer me!",
    ],
}

#: marker in a detail's trigger list: only for problem reports, not for how-to requests
ISSUE = "<issue>"

# Details: (sentence, triggers). A detail is only attached to a problem statement that
# contains one of its trigger words (no triggers: fits any problem of the class); ISSUE
# restricts it to complaints rather than requests. See ``detail_fits``.
DETAILS: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "generic": [
        ("my order number is {order}.", ("order", "refund", "parcel", "package", "delivery", "box", "{product}")),
        ("this started on {date}.", (ISSUE,)),
        ("i already tried the live chat and got nowhere.", (ISSUE,)),
        ("i emailed about this on {date} and heard nothing back.", ()),
        ("i've been a customer since {year}.", ()),
        ("this is the second time this has happened.", (ISSUE,)),
        ("i have screenshots if you need them.", (ISSUE,)),
        ("my email is {email}.", ()),
        ("nobody on the phone line could help.", ()),
        ("your faq page didn't cover this.", ()),
        ("i'm writing on behalf of my mum, it's her account and she's not great with computers.",
         ("account", "order", "refund", "charg", "log in", "password", "parcel", "delivery")),
        ("i'm away from {date} so i need this sorted soon.", ()),
        ("i've waited {days} days already.", (ISSUE,)),
        ("i've been going back and forth with your chat bot for half an hour and it keeps sending me "
         "the same help article that doesn't answer anything.", ()),
        ("i rang the helpline on {date}, waited forty minutes on hold and then got cut off.", ()),
    ],
    "billing": [
        ("the charge was on my {card}.", ("charg", "took", "taken", "billed", "payment", "paying", "debit")),
        ("my bank statement shows {amount} taken on {date}.", ("charg", "took", "taken", "billed", "twice")),
        ("i just want my money back.", ("refund", "charg", "took", "money", "billed", "fee")),
        ("the receipt number is {receipt}.", ("refund", "charg", "receipt", "invoice", "order", "paid", "price")),
        ("i checked with my bank and they say it's on your side.", ("refund", "charg", "declined", "took", "debit")),
        ("it's put me into my overdraft.", ("charg", "took", "taken", "twice", "three times", "debit")),
        ("the payment reference is {receipt}.", ("payment", "charg", "paid", "debit")),
        ("i've attached the invoice.", ("invoice", "bill", "fee", "tax")),
        ("i'm on the {plan} plan.", ("plan", "subscription", "renew", "trial", "seat", "monthly")),
        ("money is tight this month so i really need this resolved quickly, i can't afford to be "
         "out of pocket for something i didn't agree to.", ("charg", "took", "refund", "fee", "billed", "twice")),
        ("i've looked through my emails and the only receipt i have shows a completely different total.",
         ("charg", "total", "price", "invoice", "statement", "fee")),
    ],
    "technical": [
        ("i've tried restarting it twice.", (ISSUE,)),
        ("i already reinstalled the app.", ("app",)),
        ("i'm on version {version}.", ("app", "update")),
        ("cleared the cache and cookies, no change.", ("site", "page", "browser", "dashboard", "search", "{browser}")),
        ("it worked fine until {date}.", (ISSUE,)),
        ("the error says {error}.", ("fail", "crash", "won't", "doesn't", "broken", "reject", "render", "load")),
        ("my wifi is fine, every other device works.", ("wifi", "connect", "internet", "load", "stream", "sync")),
        ("i'm using {browser} on a {device}.", ("site", "page", "website", "dashboard", "search", "link")),
        ("tried unplugging it for ten minutes, nothing.", ("{gadget}", "{camera}", "remote", "speaker", "charge")),
        ("it happens on both my phone and laptop.", ("app", "sync", "site", "videos", "streaming")),
        ("i use this every day for work so it's a real problem, i've lost most of the morning trying "
         "to get it going again and i'm running out of ideas.", (ISSUE,)),
        ("i followed every step in the troubleshooting guide on your website, including the full "
         "reset, and it's exactly the same.", ("{gadget}", "{camera}", "app", "won't", "doesn't")),
    ],
    "shipping": [
        ("the tracking number is {tracking}.", ("order", "parcel", "package", "tracking", "delivered", "arrive")),
        ("it was meant to arrive on {date}.", ("where", "tracking", "late", "arrive", "pushed", "days", "stuck")),
        ("i live in {city}.", ()),
        ("the courier is {carrier}.", ("deliver", "parcel", "package", "tracking", "courier", "driver", "box")),
        ("i've checked with all my neighbours.", (ISSUE, "delivered", "arrived", "nothing", "missing", "lost")),
        ("i really need it by {date}.", ("where", "ship", "arrive", "late", "redirect", "deliver", "pushed")),
        ("i was home all day.", (ISSUE, "delivered", "driver", "courier", "nobody", "delivery")),
        ("the last tracking update just says in transit.", ("where", "tracking", "stuck", "late", "days")),
        ("it's the {product}.", ("item", "return", "order", "box", "parcel")),
        ("i ordered it on {date} as a birthday present for my sister and the party is this weekend, "
         "so i'm really running out of time here.", ("where", "arrive", "late", "ship", "pushed", "days")),
        ("i've got photos of the box and the packaging if you need them for a claim.",
         ("damaged", "crushed", "smashed", "open", "scratched", "wet", "rain")),
    ],
    "account": [
        ("the email on the account is {email}.", ()),
        ("i've tried the reset link three times.", ("log in", "password", "locked", "reset", "sign in")),
        ("i've had this account since {year}.", ()),
        ("i checked my spam and junk folders.", ("email", "link", "arrive", "code")),
        ("i'm using the same email as always.", ("log in", "password", "sign in", "find my account")),
        ("i can prove who i am if needed.", ("hack", "locked", "access", "owner", "suspended", "verif", "wasn't me")),
        ("i tried on the app and the website.", ("can't", "won't", "doesn't", "isn't", "greyed")),
        ("my username is {username}.", ()),
        ("i'm really worried because my card details are saved on there and i have no idea who "
         "else can see my information.", ("hack", "wasn't me", "someone", "didn't create")),
    ],
}

#: realistic misspellings applied by ``add_typo`` (correct -> typo)
MISSPELLINGS: dict[str, str] = {
    "received": "recieved", "address": "adress", "account": "acount", "password": "pasword",
    "definitely": "definately", "please": "pls", "because": "becuase", "refund": "refudn",
    "tracking": "traking", "already": "allready", "payment": "payemnt", "subscription": "subscribtion",
    "delivered": "deliverd", "really": "realy", "again": "agian", "charged": "chargd",
    "business": "buisness", "immediately": "immediatly", "cancelled": "canceld", "you": "u",
    "thanks": "thx", "email": "e-mail", "since": "sicne", "receipt": "reciept",
    "weird": "wierd", "until": "untill", "arrived": "arived", "which": "wich",
}
SHOUT_WORDS: list[str] = ["still", "never", "twice", "again", "nothing", "not", "wrong", "three", "every"]
QUESTION_STARTS: tuple[str, ...] = (
    "why", "how", "can", "where", "when", "do ", "is ", "could", "what", "will",
)

#: problems starting like this are requests / how-to questions rather than reports of a fault
REQUEST_STARTS: tuple[str, ...] = (
    "how", "can i", "can you", "do you", "is there", "i'd like", "i want", "please", "i need", "where do",
)

TONE_WEIGHTS: dict[str, float] = {"polite": 0.36, "neutral": 0.28, "angry": 0.2, "terse": 0.16}

# fmt: on

# --------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------


SLOT_RE = re.compile(r"\{(\w+)\}")


def rng_for(name: str) -> random.Random:
    """An independent, reproducible random stream derived from ``SEED`` and ``name``."""
    digest = hashlib.sha256(f"{SEED}:{name}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def make_date(rng: random.Random) -> str:
    kind = rng.randrange(4)
    if kind == 0:
        day = rng.randint(1, 28)
        suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
        return f"{rng.choice(MONTHS)} {day}{suffix}"
    if kind == 1:
        return f"{rng.randint(1, 28)}/{rng.randint(1, 12):02d}"
    if kind == 2:
        return rng.choice(["yesterday", "monday", "last tuesday", "friday", "saturday", "the 3rd"])
    return f"{rng.choice(MONTHS)[:3]} {rng.randint(1, 28)}"


def make_amount(rng: random.Random) -> str:
    return f"${rng.randint(4, 349)}.{rng.choice(['99', '00', '49', '95', '50', '19'])}"


def slot_value(name: str, rng: random.Random, cache: dict[str, str]) -> str:
    """Value for ``{name}``; cached so a slot repeats consistently within one message."""
    if name in cache:
        return cache[name]
    if name == "order":
        value = f"#{rng.randint(10000, 99999)}"
    elif name in ("amount", "amount2"):
        value = make_amount(rng)
        while value in cache.values():
            value = make_amount(rng)
    elif name == "date":
        value = make_date(rng)
    elif name == "month":
        value = rng.choice(MONTHS)
    elif name == "days":
        value = str(rng.randint(3, 21))
    elif name == "year":
        value = str(rng.randint(2012, 2022))
    elif name == "product":
        value = rng.choice(PRODUCTS)
    elif name == "gadget":
        value = rng.choice(GADGETS)
    elif name == "camera":
        value = rng.choice(CAMERAS)
    elif name == "plan":
        value = rng.choice(PLANS)
    elif name == "card":
        brand = rng.choice(["visa", "mastercard", "amex", "debit card", "credit card"])
        value = f"{brand} ending in {rng.randint(0, 9999):04d}"
    elif name == "carrier":
        value = rng.choice(CARRIERS)
    elif name == "device":
        value = rng.choice(DEVICES)
    elif name == "browser":
        value = rng.choice(BROWSERS)
    elif name == "error":
        value = rng.choice(ERRORS)
    elif name == "version":
        value = f"{rng.randint(2, 6)}.{rng.randint(0, 9)}.{rng.randint(0, 12)}"
    elif name == "city":
        value = rng.choice(CITIES)
    elif name == "country":
        value = rng.choice(COUNTRIES)
    elif name == "tracking":
        if rng.random() < 0.5:
            value = f"1Z{rng.randint(10**9, 10**10 - 1)}"
        else:
            value = str(rng.randint(10**11, 10**12 - 1))
    elif name == "receipt":
        value = f"R-{rng.randint(100000, 999999)}"
    elif name == "name":
        value = rng.choice(FIRST_NAMES)
    elif name == "email":  # matches the signer's name when the message is signed
        first = cache.get("name", rng.choice(FIRST_NAMES)).lower()
        value = f"{first}.{rng.choice(SURNAMES)}{rng.randint(1, 99)}@{rng.choice(EMAIL_DOMAINS)}"
    elif name == "username":
        value = f"{rng.choice(FIRST_NAMES).lower()}_{rng.randint(1, 999)}"
    else:
        raise KeyError(f"unknown slot {{{name}}}")
    cache[name] = value
    return value


def fill(fragment: str, rng: random.Random, cache: dict[str, str]) -> str:
    return SLOT_RE.sub(lambda m: slot_value(m.group(1), rng, cache), fragment)


def is_request(problem: str) -> bool:
    """True for how-to questions and requests, False for reports of something going wrong."""
    return problem.startswith(REQUEST_STARTS)


def detail_fits(detail: str, triggers: tuple[str, ...], problem: str) -> bool:
    """Whether ``detail`` reads naturally after ``problem`` (see ``DETAILS``)."""
    if set(SLOT_RE.findall(detail)) & set(SLOT_RE.findall(problem)):
        return False  # would repeat a value the problem already states
    if ISSUE in triggers and is_request(problem):
        return False
    words = [t for t in triggers if t != ISSUE]
    return not words or any(w in problem for w in words)


def end_problem(problem: str, tone: str, rng: random.Random) -> str:
    """Give a problem statement its final punctuation (or none, for terse messages)."""
    if problem.endswith("?"):
        return problem
    question = problem.startswith(QUESTION_STARTS) and "?" not in problem
    if tone == "terse":
        return problem + rng.choice(["", "", "?"]) if question else problem
    if tone == "angry" and rng.random() < 0.6:
        return problem + rng.choice(["?", "??", "?!"] if question else ["!", "!!", "."])
    return problem + ("?" if question else ".")


def add_typo(text: str, rng: random.Random) -> str:
    """Introduce one realistic misspelling, or else swap two adjacent letters in a word."""
    words = text.split(" ")
    candidates = [i for i, w in enumerate(words) if w.strip(".,!?:").lower() in MISSPELLINGS]
    if candidates and rng.random() < 0.7:
        i = rng.choice(candidates)
        core = words[i].strip(".,!?:")
        words[i] = words[i].replace(core, MISSPELLINGS[core.lower()], 1)
        return " ".join(words)
    plain = [i for i, w in enumerate(words) if w.isalpha() and len(w) >= 5]
    if not plain:
        return text
    i = rng.choice(plain)
    w = words[i]
    j = rng.randrange(1, len(w) - 2)
    words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
    return " ".join(words)


def shout(text: str, rng: random.Random) -> str:
    """Upper-case one emphasis word (angry messages)."""
    words = text.split(" ")
    hits = [i for i, w in enumerate(words) if w.strip(".,!?").lower() in SHOUT_WORDS]
    if hits:
        i = rng.choice(hits)
        words[i] = words[i].upper()
    return " ".join(words)


def sentence_case(text: str) -> str:
    text = re.sub(r"\bi\b", "I", text)
    return re.sub(r"(^|[.!?]\s+)([a-z])", lambda m: m.group(1) + m.group(2).upper(), text)


def pick_tone(rng: random.Random) -> str:
    return rng.choices(list(TONE_WEIGHTS), weights=list(TONE_WEIGHTS.values()))[0]


def compose(
    problem: str,
    label: str,
    rng: random.Random,
    *,
    typos: bool = True,
    tone: str | None = None,
) -> str:
    """Wrap one problem statement into a full customer message."""
    tone = tone or pick_tone(rng)
    cache: dict[str, str] = {}
    parts: list[str] = []
    if tone != "terse" and rng.random() < 0.75:
        parts.append(fill(rng.choice(OPENERS[tone]), rng, cache))
    parts.append(end_problem(fill(problem, rng, cache), tone, rng))
    n_details = {
        "polite": rng.choice([0, 1, 1, 2, 2, 3]),
        "neutral": rng.choice([0, 0, 1]),
        "angry": rng.choice([1, 1, 2, 3]),
        "terse": 0,
    }[tone]
    options = [d for d, t in DETAILS[label] if detail_fits(d, t, problem)]
    generic = [d for d, t in DETAILS["generic"] if detail_fits(d, t, problem)]
    chosen: list[str] = []
    for _ in range(n_details):
        pool = options if options and rng.random() < 0.65 else generic
        detail = rng.choice(pool)
        if detail not in chosen:
            chosen.append(detail)
    parts.extend(fill(d, rng, cache) for d in chosen)
    if tone != "terse" and rng.random() < 0.7:
        parts.append(fill(rng.choice(CLOSERS[tone]), rng, cache))
    text = " ".join(parts)
    if tone == "angry" and rng.random() < 0.35:
        text = shout(text, rng)
    if typos and rng.random() < 0.18:
        text = add_typo(text, rng)
    p_sentence_case = {"polite": 0.55, "angry": 0.55, "neutral": 0.3, "terse": 0.0}[tone]
    return sentence_case(text) if rng.random() < p_sentence_case else text.lower()


class Deck:
    """Draw problem statements per class without replacement, reshuffling when empty."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.cards: dict[str, list[str]] = {c: [] for c in CLASSES}

    def draw(self, label: str) -> str:
        if not self.cards[label]:
            self.cards[label] = list(PROBLEMS[label])
            self.rng.shuffle(self.cards[label])
        return self.cards[label].pop()


class Seen:
    """What has been generated so far; train and test share one, so no text is reused."""

    def __init__(self) -> None:
        self.texts: set[str] = set()
        #: problems already used as a bare (terse) message: a second one would be a near-duplicate
        self.terse_problems: set[str] = set()


def unique_message(label: str, deck: Deck, rng: random.Random, seen: Seen, *, typos: bool = True) -> str:
    """Compose a message of MIN..MAX words whose text has not been produced before."""
    problem = deck.draw(label)
    while True:
        tone = pick_tone(rng)
        if tone == "terse" and problem in seen.terse_problems:
            continue
        text = compose(problem, label, rng, typos=typos, tone=tone)
        if MIN_WORDS <= len(text.split()) <= MAX_WORDS and text not in seen.texts:
            seen.texts.add(text)
            if tone == "terse":
                seen.terse_problems.add(problem)
            return text


@dataclass
class Row:
    text: str
    label: str  # label as written to sample.csv
    true_label: str
    kind: str = "normal"  # normal | ambiguous | blank | empty_label | script | dup_same | dup_conflict
    note: str = ""
    ref: Row | None = None  # original row of a duplicate
    id: str = ""

    @property
    def is_label_error(self) -> bool:
        return self.label.strip() != "" and self.label.strip() != self.true_label


def build_train(seen: Seen) -> list[Row]:
    rng = rng_for("train")
    deck = Deck(rng_for("train-deck"))
    rows: list[Row] = []

    # 1) ambiguous rows
    for primary, secondary, fragment in rng.sample(AMBIGUOUS, N_AMBIGUOUS):
        text = compose(fragment, primary, rng, typos=False, tone=rng.choice(["polite", "neutral"]))
        seen.texts.add(text)
        rows.append(Row(text, primary, primary, "ambiguous", f"ambiguous {primary}/{secondary}"))

    # 2) special rows with a fixed intended class
    rows.append(Row("", "technical", "technical", "blank", "blank text (empty string); quarantine"))
    rows.append(Row("   ", "account", "account", "blank", "blank text (whitespace only); quarantine"))
    text = unique_message("account", deck, rng, seen, typos=False)
    rows.append(Row(text, "", "account", "empty_label", "empty label; quarantine"))
    script_text = (
        f"hi, i pasted a review snippet into the product search and it printed {SCRIPT_TAG} back at me, "
        f"then the page went blank in {rng.choice(BROWSERS)}. looks like a bug on your site?"
    )
    seen.texts.add(script_text)
    rows.append(Row(script_text, "technical", "technical", "script", "contains <script> tag; valid row"))

    # 3) ordinary rows up to the target class counts (duplicates count towards their class)
    have = Counter(r.true_label for r in rows)
    have.update([*DUP_SAME_CLASSES, DUP_CONFLICT_CLASS])
    normal: list[Row] = []
    for label in CLASSES:
        for _ in range(TRAIN_COUNTS[label] - have[label]):
            normal.append(Row(unique_message(label, deck, rng, seen), label, label))
    rows.extend(normal)

    # 4) duplicates of ordinary rows (originals are never noisy or otherwise special)
    pool = list(normal)
    rng.shuffle(pool)
    originals = {c: next(r for r in pool if r.true_label == c) for c in [*DUP_SAME_CLASSES, DUP_CONFLICT_CLASS]}
    for c in DUP_SAME_CLASSES:
        rows.append(Row(originals[c].text, c, c, "dup_same", ref=originals[c]))
    orig = originals[DUP_CONFLICT_CLASS]
    wrong = rng.choice([c for c in CLASSES if c != DUP_CONFLICT_CLASS])
    rows.append(Row(orig.text, wrong, DUP_CONFLICT_CLASS, "dup_conflict", ref=orig))
    reserved = {id(r) for r in originals.values()}

    # 5) label noise on ordinary rows
    eligible = [r for r in normal if id(r) not in reserved]
    noisy = rng.sample(eligible, N_RANDOM_NOISE)
    for r in noisy:
        r.label = rng.choice([c for c in CLASSES if c != r.true_label])
    noisy_ids = {id(r) for r in noisy}

    # 6) stray whitespace around two correct labels
    clean = [r for r in eligible if id(r) not in noisy_ids]
    for label, padded in [("billing", " billing"), ("shipping", "shipping ")]:
        r = next(x for x in clean if x.true_label == label)
        r.label = padded
        r.note = f"label has stray whitespace ({padded!r}); valid after trimming"
        clean.remove(r)

    # 7) shuffle, assign ids, write duplicate notes now that ids exist
    rng.shuffle(rows)
    for i, r in enumerate(rows, 1):
        r.id = f"t{i:04d}"
    for r in rows:
        if r.ref is None:
            continue
        first, second = sorted([r, r.ref], key=lambda x: x.id)
        if r.kind == "dup_same":
            first.note = f"exact duplicate text of {second.id} (same label)"
            second.note = f"duplicate of {first.id} (same label)"
        else:
            r.note = f"duplicate text of {r.ref.id} with a conflicting label; this row's label is wrong"
            r.ref.note = f"duplicate text of {r.id} with a conflicting label; this row's label is correct"
    return rows


def build_test(seen: Seen) -> list[Row]:
    rng = rng_for("test")
    deck = Deck(rng_for("test-deck"))
    rows = [
        Row(unique_message(label, deck, rng, seen), label, label)
        for label in CLASSES
        for _ in range(TEST_COUNTS[label])
    ]
    rng.shuffle(rows)
    for i, r in enumerate(rows, 1):
        r.id = f"x{i:04d}"
    return rows


def write_csv(path: Path, header: list[str], records: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(records)


def check(train: list[Row], test: list[Row]) -> None:
    """Sanity checks on the generated data; raise AssertionError on any violation."""
    for label, problems in PROBLEMS.items():
        assert len(problems) >= 60 and len(set(problems)) == len(problems), label
    assert Counter(r.true_label for r in train) == Counter(TRAIN_COUNTS)
    assert Counter(r.label for r in test) == Counter(TEST_COUNTS)
    n_err = sum(r.is_label_error for r in train)
    assert n_err == N_RANDOM_NOISE + 1, n_err
    kinds = Counter(r.kind for r in train)
    assert kinds["blank"] == 2 and kinds["empty_label"] == 1 and kinds["script"] == 1
    assert kinds["dup_same"] == 2 and kinds["dup_conflict"] == 1 and kinds["ambiguous"] == N_AMBIGUOUS
    texts = Counter(r.text for r in train if r.text.strip())
    assert sum(n - 1 for n in texts.values()) == 3, "expected exactly 3 duplicate texts"
    assert not {r.text for r in train} & {r.text for r in test}, "test text appears in train"
    assert len({r.text for r in test}) == len(test)
    assert sum(SCRIPT_TAG in r.text for r in train) == 1
    for r in train + test:
        if r.kind not in ("blank",):
            assert MIN_WORDS <= len(r.text.split()) <= MAX_WORDS, r.text


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def main() -> None:
    seen = Seen()
    train = build_train(seen)
    test = build_test(seen)
    check(train, test)

    DATA_DIR.mkdir(parents=True, exist_ok=True)
    paths = {name: DATA_DIR / name for name in ("sample.csv", "sample_truth.csv", "sample_test.csv")}
    write_csv(paths["sample.csv"], ["id", "text", "label"], [[r.id, r.text, r.label] for r in train])
    write_csv(
        paths["sample_truth.csv"],
        ["id", "true_label", "is_label_error", "note"],
        [[r.id, r.true_label, str(r.is_label_error), r.note] for r in train],
    )
    write_csv(paths["sample_test.csv"], ["id", "text", "label"], [[r.id, r.text, r.label] for r in test])

    given = Counter(r.label.strip() or "(empty)" for r in train)
    lengths = [len(r.text.split()) for r in train + test if r.text.strip()]
    n_err = sum(r.is_label_error for r in train)
    print(f"sample.csv       {len(train)} rows")
    print("  true labels:   " + ", ".join(f"{c} {TRAIN_COUNTS[c]}" for c in CLASSES))
    print("  given labels:  " + ", ".join(f"{c} {given[c]}" for c in [*CLASSES, "(empty)"]))
    print(f"  label errors:  {n_err} ({n_err / len(train):.1%})")
    print(f"  ambiguous:     {sum(r.kind == 'ambiguous' for r in train)}")
    print("  special rows:")
    for r in train:
        if r.note and r.kind != "ambiguous":
            print(f"    {r.id}  {r.note}")
    print(f"sample_test.csv  {len(test)} rows: " + ", ".join(f"{c} {TEST_COUNTS[c]}" for c in CLASSES))
    print(f"words per text:  min {min(lengths)}, max {max(lengths)}, mean {sum(lengths) / len(lengths):.1f}")
    print(f"train/test text overlap: {len({r.text for r in train} & {r.text for r in test})}")
    for name, path in paths.items():
        print(f"sha256 {file_digest(path)}  data/{name}")


if __name__ == "__main__":
    main()
