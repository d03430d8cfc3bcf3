"""Realistic synthetic helpdesk tickets, so the product can be tried and tested without real customer data.

The data is deliberately imperfect like real tickets: categories share vocabulary (refunds and billing,
account access and security), some tickets mention a second issue, about 5 % are German, some have
typos, and about 5 % carry a wrong label (agents misfile). Priority follows category, urgent wording,
customer tier and channel, with noise, so it is learnable but not trivially.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

CATEGORY_WEIGHTS: dict[str, float] = {
    "technical_issue": 0.22,
    "billing": 0.15,
    "account_access": 0.14,
    "shipping": 0.12,
    "general_inquiry": 0.11,
    "refund_request": 0.10,
    "feature_request": 0.09,
    "security": 0.07,
}
PRIORITIES = ("low", "medium", "high", "critical")
CHANNELS = ("email", "web", "chat", "phone", "api")
TIERS = ("free", "standard", "premium", "enterprise")
COLUMNS = ("ticket_id", "subject", "body", "category", "priority", "created_at", "channel", "customer_tier")

GERMAN_SHARE = 0.05
LABEL_NOISE = 0.05
SECOND_ISSUE_SHARE = 0.10  # tickets that also mention a neighbouring category's problem
TYPO_SHARE = 0.12
GENERIC_SUBJECT_SHARE = 0.2  # "Billing issue", "Help": subjects that say little
YEAR_START = datetime(2025, 1, 1, tzinfo=UTC)
DAYS = 365

# Where misfiled and two-issue tickets go: the categories agents actually confuse.
NEIGHBOURS: dict[str, tuple[str, ...]] = {
    "billing": ("refund_request", "general_inquiry"),
    "refund_request": ("billing", "shipping"),
    "shipping": ("refund_request", "general_inquiry"),
    "technical_issue": ("account_access", "feature_request"),
    "account_access": ("security", "technical_issue"),
    "security": ("account_access", "technical_issue"),
    "feature_request": ("general_inquiry", "technical_issue"),
    "general_inquiry": ("billing", "feature_request"),
}

_TIER_P = (0.35, 0.35, 0.20, 0.10)
_CHANNEL_P_BY_TIER = {  # enterprise customers phone and integrate more, free users mostly chat and web
    "free": (0.34, 0.36, 0.26, 0.03, 0.01),
    "standard": (0.42, 0.27, 0.18, 0.09, 0.04),
    "premium": (0.40, 0.22, 0.16, 0.14, 0.08),
    "enterprise": (0.36, 0.14, 0.10, 0.20, 0.20),
}
_URGENT_P = {
    "security": 0.40,
    "technical_issue": 0.25,
    "account_access": 0.25,
    "refund_request": 0.10,
    "shipping": 0.12,
    "billing": 0.10,
    "feature_request": 0.02,
    "general_inquiry": 0.02,
}
_PRIORITY_BASE = {
    "security": 1.9,
    "technical_issue": 1.2,
    "account_access": 1.1,
    "billing": 0.7,
    "shipping": 0.6,
    "refund_request": 0.5,
    "general_inquiry": -0.1,
    "feature_request": -0.4,
}
_PRIORITY_TIER = {"free": -0.4, "standard": 0.0, "premium": 0.35, "enterprise": 0.8}
_PRIORITY_CHANNEL = {"email": 0.0, "web": 0.0, "chat": 0.2, "phone": 0.45, "api": 0.3}
_PRIORITY_CUTS = (0.75, 1.75, 2.85)  # score -> low | medium | high | critical

# Tickets per hour of day (UTC): business hours dominate, a lunch dip, a quiet night.
_HOURS_WEEKDAY = np.array(
    [
        0.3,
        0.2,
        0.15,
        0.15,
        0.2,
        0.4,
        0.9,
        2.0,
        4.0,
        5.5,
        6.0,
        5.5,
        4.2,
        5.0,
        5.5,
        5.0,
        4.2,
        3.0,
        2.0,
        1.6,
        1.3,
        1.0,
        0.7,
        0.5,
    ]
)
_HOURS_WEEKEND = np.array(
    [
        0.4,
        0.3,
        0.2,
        0.2,
        0.2,
        0.3,
        0.5,
        0.8,
        1.2,
        1.6,
        1.9,
        2.0,
        2.0,
        2.0,
        1.9,
        1.8,
        1.7,
        1.6,
        1.5,
        1.4,
        1.3,
        1.1,
        0.8,
        0.6,
    ]
)
_HOURS_API = np.ones(24) + 0.5 * _HOURS_WEEKDAY / _HOURS_WEEKDAY.max()  # integrations run round the clock
_WEEKDAY_FACTOR = np.array([1.25, 1.15, 1.1, 1.05, 0.95, 0.45, 0.4])  # Monday .. Sunday

# ----------------------------------------------------------------------------------------------------
# Slot fillers. A slot is drawn once per ticket, so "{order}" is the same number in subject and body.

_FIRST = (
    "Anna",
    "James",
    "Maria",
    "Mohammed",
    "Li",
    "Sophie",
    "Daniel",
    "Priya",
    "Lukas",
    "Emma",
    "Carlos",
    "Olivia",
    "Tom",
    "Fatima",
    "Noah",
    "Julia",
    "Kenji",
    "Sarah",
    "Peter",
    "Aisha",
    "Marco",
    "Laura",
)
_LAST = (
    "Smith",
    "Müller",
    "Garcia",
    "Chen",
    "Johnson",
    "Kowalski",
    "Patel",
    "Schneider",
    "Rossi",
    "Brown",
    "Nguyen",
    "Weber",
    "Okafor",
    "Martin",
    "Hansen",
    "Silva",
    "Fischer",
    "Taylor",
)
_AGENTS = ("Kim", "Alex", "Jordan", "Sam", "Chris", "Robin")
_PRODUCTS = (
    "CloudSync Pro",
    "the mobile app",
    "the web dashboard",
    "the desktop client",
    "the Analytics add-on",
    "the reporting module",
    "the Android app",
    "the iOS app",
    "the browser extension",
)
_DEVICES = (
    "SmartHub 3",
    "Router X2",
    "K380 keyboard",
    "USB-C docking station",
    "H5 headset",
    "4K webcam",
    "smart thermostat T1",
    "Mesh Extender",
    "label printer LP-200",
)
_PLANS = ("Basic", "Standard", "Pro", "Business", "Enterprise")
_FEATURES = ("reports", "settings", "team management", "invoices", "calendar", "file sharing", "search")
_ERRORS = (
    "ERR_CONNECTION_RESET",
    "500 Internal Server Error",
    "error 0x80070005",
    "E-4012",
    "403 Forbidden",
    "SYNC_CONFLICT_409",
    "502 Bad Gateway",
    "timeout after 30 seconds",
    "ECONNREFUSED",
    "code 1107",
)
_BROWSERS = ("Chrome", "Firefox", "Safari", "Edge", "Chrome 131", "Firefox 133")
_OSES = ("Windows 11", "Windows 10", "macOS Sonoma", "macOS 15", "Ubuntu 24.04", "iOS 18", "Android 15")
_CARRIERS = ("UPS", "DHL", "FedEx", "USPS", "DPD", "Royal Mail")
_CITIES = ("Lagos", "São Paulo", "Frankfurt", "Manila", "Toronto", "Kyiv", "Singapore", "Lyon", "Warsaw")
_COUNTRIES = ("Canada", "Switzerland", "Norway", "Brazil", "Australia", "Japan", "Mexico", "Ireland")
_STREETS = (
    "12 Oak Street",
    "Hauptstraße 5",
    "221 Baker Street",
    "48 Elm Avenue",
    "7 Rue de Lyon",
    "19 King's Road",
)
_FEATURE_REQUESTS = (
    "dark mode",
    "bulk editing",
    "export to Excel",
    "an Outlook calendar integration",
    "custom fields on invoices",
    "SAML single sign-on",
    "an offline mode in the mobile app",
    "keyboard shortcuts",
    "scheduled reports",
    "role-based permissions",
    "multi-currency support",
    "a public status page",
    "two-factor login via hardware keys",
)
_LIMITATIONS = (
    "edit more than one record at a time",
    "schedule a report for a fixed weekday",
    "restrict what read-only users can see",
    "filter the invoice list by project",
    "export the audit log",
)
_DEVICE_NAMES = (
    "Windows PC",
    "iPhone 15",
    "Linux x86_64",
    "Samsung Galaxy S23",
    "unknown browser on Android",
)
_MONTHS_DE = (
    "Januar",
    "Februar",
    "März",
    "April",
    "Mai",
    "Juni",
    "Juli",
    "August",
    "September",
    "Oktober",
    "November",
    "Dezember",
)


def _money(rng: np.random.Generator, lang: str) -> str:
    value = float(rng.choice([9.99, 19.0, 29.99, 49.0, 79.0, 99.0, 149.0, 249.0, 499.0, 1199.0]))
    if rng.random() < 0.3:  # several seats or months
        value *= int(rng.integers(2, 6))
    if lang == "de":  # 1.234,50 €
        return f"{value:,.2f}".replace(",", "_").replace(".", ",").replace("_", ".") + " €"
    return f"${value:,.2f}"


class _Slots(dict[str, str]):
    """Draws each slot's value on first use, then keeps it for the rest of the ticket."""

    def __init__(self, rng: np.random.Generator, lang: str, created: datetime) -> None:
        super().__init__()
        self.rng = rng
        self.lang = lang
        self.created = created

    def pick(self, options: Sequence[str]) -> str:
        return options[int(self.rng.integers(len(options)))]

    def __missing__(self, key: str) -> str:
        if key not in _MAKERS and key.endswith("2"):  # a second, different value: "{plan} ... {plan2}"
            base = key[:-1]
            value = self._draw(base)
            for _ in range(10):
                if value != self[base]:
                    break
                value = self._draw(base)
        else:
            value = self._draw(key)
        self[key] = value
        return value

    def _draw(self, key: str) -> str:
        if key in _POOLS:
            return self.pick(_POOLS[key])
        if key == "date":
            day = self.created - timedelta(days=int(self.rng.integers(1, 21)))
            return f"{day.day}. {_MONTHS_DE[day.month - 1]}" if self.lang == "de" else f"{day:%B} {day.day}"
        maker = _MAKERS.get(key)
        if maker is None:
            raise KeyError(f"template uses unknown slot {key!r}")
        return maker(self)


_POOLS: dict[str, Sequence[str]] = {
    "first": _FIRST,
    "agent": _AGENTS,
    "product": _PRODUCTS,
    "device": _DEVICES,
    "plan": _PLANS,
    "feature": _FEATURES,
    "error_code": _ERRORS,
    "browser": _BROWSERS,
    "os": _OSES,
    "carrier": _CARRIERS,
    "city": _CITIES,
    "country": _COUNTRIES,
    "street": _STREETS,
    "feature_req": _FEATURE_REQUESTS,
    "limitation": _LIMITATIONS,
    "device_name": _DEVICE_NAMES,
}

_MAKERS: dict[str, Callable[[_Slots], str]] = {
    "name": lambda s: f"{s['first']} {s.pick(_LAST)}",
    "email": lambda s: f"{s['first'].lower()}.{s.pick(_LAST).lower().replace('ü', 'ue')}@{s.pick(_DOMAINS)}",
    "fake_email": lambda s: f"support@{s.pick(('northwind-billing.co', 'nwd-secure.net', 'northwlnd.com'))}",
    "username": lambda s: f"{s['first'].lower()}{int(s.rng.integers(1, 99))}",
    "amount": lambda s: _money(s.rng, s.lang),
    "order": lambda s: f"#{int(s.rng.integers(1_000_000, 9_999_999))}",
    "invoice": lambda s: f"INV-2025-{int(s.rng.integers(0, 99_999)):05d}",
    "tracking": lambda s: f"1Z{int(s.rng.integers(10**9, 10**10 - 1))}",
    "last4": lambda s: f"{int(s.rng.integers(0, 10_000)):04d}",
    "po": lambda s: f"PO-{int(s.rng.integers(10_000, 99_999))}",
    "days": lambda s: str(int(s.rng.integers(2, 15))),
    "hours": lambda s: str(int(s.rng.integers(2, 49))),
    "months": lambda s: str(int(s.rng.integers(2, 5))),
    "colleague": lambda s: f"{s.pick(_FIRST)} {s.pick(_LAST)}",
    "seats": lambda s: str(int(s.rng.integers(12, 60))),
    "seats2": lambda s: str(int(s["seats"]) - int(s.rng.integers(2, 10))),  # fewer than billed
    "users": lambda s: str(int(s.rng.choice([3, 5, 8, 12, 25, 40, 120, 300]))),
    "version": lambda s: (
        f"{int(s.rng.integers(2, 6))}.{int(s.rng.integers(0, 15))}.{int(s.rng.integers(0, 9))}"
    ),
    "ip": lambda s: ".".join(str(int(x)) for x in s.rng.integers(1, 255, size=4)),
    "time": lambda s: f"{int(s.rng.integers(0, 24)):02d}:{int(s.rng.integers(0, 60)):02d}",
    "years": lambda s: str(int(s.rng.integers(2, 9))),
}
_DOMAINS = ("gmail.com", "outlook.com", "acme-corp.com", "web.de", "yahoo.com", "example.org", "mail.co.uk")

# ----------------------------------------------------------------------------------------------------
# Templates. Each issue pairs the sentence describing the problem with subjects a customer would write
# for it; a category's generic subjects ("Billing issue") stand in now and then. Details and requests
# fit any issue of the category.

_Issue = tuple[tuple[str, ...], str]
_Templates = dict[str, dict[str, tuple[str, ...] | tuple[_Issue, ...]]]

_EN: _Templates = {
    "billing": {
        "issues": (
            (
                ("Why was I charged {amount}?", "Wrong amount charged"),
                "I was charged {amount} on {date}, but my {plan} plan should only cost {amount2} per month.",
            ),
            (
                ("Question about invoice {invoice}", "Too many seats on invoice"),
                "Our latest invoice {invoice} lists {seats} seats, but we only have {seats2} active users.",
            ),
            (
                ("Charged twice this month", "Double charge"),
                "I see two charges of {amount} on my credit card ending in {last4} for the same month.",
            ),
            (
                ("Card declined on renewal", "Payment failed"),
                "The renewal of my {plan} subscription failed because the card was declined, "
                "but the card works everywhere else.",
            ),
            (
                ("Update billing address", "VAT number on invoices"),
                "We need to update the billing address and VAT number before the next invoice is issued.",
            ),
            (
                ("Invoice recipient", "Change invoice address"),
                "Our invoices should be addressed to our finance department and not to me personally.",
            ),
            (
                ("Still billed the old price", "Downgrade not reflected on invoice"),
                "I downgraded from {plan} to a smaller plan last month but I was still billed the old price.",
            ),
            (
                ("Question about invoice {invoice}", "What is 'usage overage'?"),
                "Could you explain the line 'usage overage' on invoice {invoice}? We did not expect it.",
            ),
            (
                ("Invoices missing", "Can't download invoice PDFs"),
                "The invoice PDFs for the last {months} months are missing from the billing page.",
            ),
            (
                ("Charged monthly instead of annually", "Billing cycle wrong"),
                "We switched to annual billing but were charged monthly again on {date}.",
            ),
        ),
        "subject": ("Billing issue", "Invoice question", "Billing", "Question about my bill"),
        "detail": (
            "The charge shows up on my statement as NWD*SUBSCRIPTION.",
            "Our account email is {email}.",
            "I attached a screenshot of the bank statement.",
            "Our purchase order number is {po}.",
            "We pay by SEPA direct debit.",
        ),
        "ask": (
            "Please correct this and send me an updated invoice.",
            "Can you tell me what this charge is for?",
            "Could you adjust the amount or credit the difference?",
            "Please check our billing settings.",
            "Please get back to me before the next payment run.",
        ),
    },
    "refund_request": {
        "issues": (
            (
                ("Return and refund {device}", "Refund request"),
                "I would like to return the {device} I received on {date} and get a full refund. "
                "I still have the original packaging.",
            ),
            (
                ("Cancel and refund subscription", "Charged after cancelling"),
                "I cancelled my {plan} subscription on {date} but was charged {amount} anyway. "
                "I want this money back.",
            ),
            (
                ("Refund still not received", "Where is my refund?"),
                "I sent back order {order} {days} days ago with {carrier} and still have not received my "
                "refund. The return tracking number is {tracking}.",
            ),
            (
                ("Refund instead of replacement", "Defective {device} - refund"),
                "The {device} stopped working after two days and I would prefer a refund, not a replacement.",
            ),
            (
                ("Charged twice - please refund", "Duplicate payment for order {order}"),
                "I was charged twice for order {order}. Please refund the duplicate payment of {amount}.",
            ),
            (
                ("Promised refund not received", "Refund of {amount}"),
                "Your colleague promised a refund of {amount} last week, but nothing has arrived on my card "
                "ending in {last4}.",
            ),
            (
                ("Refund for annual plan", "Wrong plan bought by mistake"),
                "I accidentally bought the annual {plan} plan instead of the monthly one. "
                "Can I get a refund?",
            ),
            (
                ("Damaged item - money back please", "Refund for order {order}"),
                "Order {order} arrived damaged and I do not want a replacement, I just want my money back.",
            ),
        ),
        "subject": ("Refund", "Requesting a refund", "I want my money back", "Refund request"),
        "detail": (
            "I paid with PayPal.",
            "The payment was made with my card ending in {last4}.",
            "I have been a customer for {years} years.",
        ),
        "ask": (
            "Please process the refund as soon as possible.",
            "How long until the money is back on my account?",
            "Please confirm once the refund has been issued.",
            "Please refund the full amount.",
        ),
    },
    "shipping": {
        "issues": (
            (
                ("Where is my order {order}?", "Tracking not updating"),
                "My order {order} was supposed to arrive on {date} but the tracking has not changed for "
                "{days} days.",
            ),
            (
                ("Package not delivered", "Marked as delivered but nothing arrived"),
                "The {carrier} tracking says the package was delivered, but I never received it.",
            ),
            (
                ("Wrong item received", "Wrong product in my order {order}"),
                "I received a {device2} instead of the {device} I ordered.",
            ),
            (
                ("Change delivery address", "New address for order {order}"),
                "Can I still change the delivery address for order {order}? I moved last week.",
            ),
            (
                ("Damaged package", "{device} arrived broken"),
                "The box arrived crushed and the {device} inside is broken.",
            ),
            (
                ("Item missing from order {order}", "Incomplete delivery"),
                "Only one of the two items in order {order} was delivered.",
            ),
            (
                ("Stuck in customs", "Parcel held in customs"),
                "The parcel has been stuck in customs in {city} since {date}.",
            ),
            (
                ("Express shipping not shipped", "Order {order} still processing"),
                "I paid for express shipping but order {order} is still shown as 'processing'.",
            ),
        ),
        "subject": ("Delivery problem", "Shipping question", "My order", "Order {order}"),
        "detail": (
            "Tracking number: {tracking}.",
            "The delivery address is {street}, {city}.",
            "I ordered it on {date}.",
            "It is a gift so the date matters.",
            "My order number is {order}.",
        ),
        "ask": (
            "Please let me know where my package is.",
            "Can you send a replacement?",
            "Please sort this out with {carrier}.",
            "What are my options?",
        ),
    },
    "technical_issue": {
        "issues": (
            (
                ("{product} keeps crashing", "Crash on {feature} page"),
                "Since the last update {product} crashes every time I open the {feature} page.",
            ),
            (
                ("Error {error_code} when syncing", "Sync not working"),
                "When I try to sync my files I get the error '{error_code}'.",
            ),
            (
                ("{device} does not turn on", "{device} dead?"),
                "The {device} does not power on anymore. The LED blinks orange three times and then nothing.",
            ),
            (
                ("CSV export broken", "Export produces empty file"),
                "Exporting reports to CSV produces an empty file.",
            ),
            (
                ("Very slow since the update", "Dashboard extremely slow"),
                "The dashboard takes more than a minute to load. This started on {date}.",
            ),
            (
                ("Webhook deliveries failing", "Webhooks return {error_code}"),
                "Our webhooks fail with {error_code} and no events reach our endpoint.",
            ),
            (
                ("{device} keeps losing Wi-Fi", "Connection drops after firmware update"),
                "The {device} keeps dropping the Wi-Fi connection every few minutes after firmware "
                "{version}.",
            ),
            (
                ("Notifications not working", "No push notifications on {os}"),
                "Push notifications no longer arrive on {os} although they are enabled in the settings.",
            ),
            (
                ("Upload stuck at 99%", "Can't upload attachments"),
                "I cannot upload attachments larger than 2 MB, the upload stops at 99%.",
            ),
            (
                ("Login page blank", "Page not loading in {browser}"),
                "The login page stays blank in {browser}, so I cannot get to my data.",
            ),
            (
                ("Slack integration stopped working", "Integration broken"),
                "The Slack integration stopped posting updates to our channel after we renamed it.",
            ),
        ),
        "subject": ("Technical problem", "Bug report", "Something is broken", "Not working", "Help"),
        "detail": (
            "I am using {browser} on {os}.",
            "I already tried reinstalling and clearing the cache.",
            "Restarting did not help.",
            "It affects {users} people in our team.",
            "Version: {version}.",
            "I attached the log file.",
            "It worked fine until last week.",
        ),
        "ask": (
            "Can you please look into this?",
            "Is this a known issue?",
            "Please advise how to fix this.",
            "Let me know if you need more logs.",
            "Is there a workaround?",
        ),
    },
    "account_access": {
        "issues": (
            (
                ("Can't log in", "Password not accepted"),
                "I can't log in to my account. It says my password is wrong even right after I reset it.",
            ),
            (
                ("Password reset email not arriving", "No reset email"),
                "I requested a password reset three times but the email never arrives at {email}.",
            ),
            (
                ("Account locked", "Locked out of my account"),
                "My account was locked after too many login attempts and I still can't get in after "
                "{hours} hours.",
            ),
            (
                ("Lost my authenticator app", "2FA reset needed"),
                "I got a new phone and lost my authenticator app, so I cannot enter the two-factor code.",
            ),
            (
                ("2FA code not working", "SMS code rejected"),
                "The verification code you send by SMS is always rejected as invalid.",
            ),
            (
                ("Change the email on my account", "Old email no longer accessible"),
                "I need to change the email address on my account because I no longer have access to "
                "{email}.",
            ),
            (
                ("SSO login fails", "Okta login error"),
                "Our SSO login via Okta fails with '{error_code}' for all users since this morning.",
            ),
            (
                ("Transfer admin rights", "New account owner"),
                "My colleague {colleague} left the company and we need the admin rights of the account "
                "moved to me.",
            ),
            (
                ("Logged out all the time", "Session keeps expiring"),
                "After changing my password I get logged out every few minutes.",
            ),
        ),
        "subject": ("Login problem", "Access problem", "Can't access my account", "Sign-in issue"),
        "detail": (
            "My username is {username}.",
            "I tried in {browser} and in the mobile app.",
            "I checked the spam folder.",
            "The account is registered under {email}.",
            "I have been a customer for {years} years.",
        ),
        "ask": (
            "Please unlock my account.",
            "How can I get access again?",
            "Can you reset the two-factor authentication for me?",
            "Please help me get back in.",
        ),
    },
    "security": {
        "issues": (
            (
                ("Suspicious login attempt", "Login from {city} - not me"),
                "I received an alert about a login to my account from {city}, which was not me.",
            ),
            (
                ("Account hacked", "Password changed without my knowledge"),
                "Someone changed my password and the email address on my account without my permission.",
            ),
            (
                ("Phishing email pretending to be you", "Is this email from you?"),
                "I got an email that looks like it is from you asking me to confirm my card details. "
                "Is it phishing? The sender address was {fake_email}.",
            ),
            (
                ("Unknown device on my account", "Unknown session"),
                "There is an unknown device '{device_name}' in the active sessions of my account.",
            ),
            (
                ("Account hacked?", "Orders I did not place"),
                "I think my account was hacked: there are orders in it that I did not place.",
            ),
            (
                ("Security vulnerability report", "Data exposure in {feature} endpoint"),
                "I found a vulnerability: the {feature} endpoint returns other customers' data when the ID "
                "is "
                "changed.",
            ),
            (
                ("Leaked API key", "API key exposed on GitHub"),
                "One of our API keys was accidentally published on GitHub. We need to revoke it and check "
                "whether it was used.",
            ),
            (
                ("Brute force attempts on admin accounts", "Many failed logins from {ip}"),
                "We see hundreds of failed login attempts on our admin accounts from IP {ip}.",
            ),
        ),
        "subject": ("Security concern", "Possible data breach?", "Security issue", "Is my account safe?"),
        "detail": (
            "It happened on {date} at about {time}.",
            "I already changed my password.",
            "I have now turned on two-factor authentication.",
            "Nobody else has access to my password.",
        ),
        "ask": (
            "Please lock the account and investigate.",
            "Can you tell me which data was accessed?",
            "Please check what happened.",
            "Please treat this as confidential.",
        ),
    },
    "feature_request": {
        "issues": (
            (
                ("Feature request: {feature_req}", "Suggestion for {product}"),
                "It would be great if {product} supported {feature_req}.",
            ),
            (("Idea: {feature_req}", "Feature request"), "Our team would really benefit from {feature_req}."),
            (
                ("Any plans for {feature_req}?", "Roadmap question"),
                "Are there any plans to add {feature_req}? Right now we work around it by hand.",
            ),
            (
                ("Please add {feature_req}", "Users are asking for {feature_req}"),
                "Many of our users have asked me for {feature_req}.",
            ),
            (
                ("Small improvement idea", "Missing option"),
                "At the moment it is not possible to {limitation}, which slows our workflow down.",
            ),
        ),
        "subject": ("Suggestion", "Feature idea", "Product feedback"),
        "detail": (
            "We have {users} users who would use this every day.",
            "A competitor already offers this.",
            "Even a simple first version would help.",
            "Happy to test a beta.",
            "We are on the {plan} plan.",
        ),
        "ask": (
            "Could you consider adding this to the roadmap?",
            "Is this planned?",
            "Let me know if you need more details about our use case.",
        ),
    },
    "general_inquiry": {
        "issues": (
            (
                ("Difference between {plan} and {plan2}", "Question about plans"),
                "What is the difference between the {plan} and the {plan2} plan?",
            ),
            (
                ("Do you ship to {country}?", "International delivery"),
                "Do you ship to {country}, and how long does delivery usually take?",
            ),
            (
                ("Student discount?", "Non-profit pricing"),
                "Is there a discount for non-profit organisations or students?",
            ),
            (("Support opening hours", "Weekend support?"), "What are your support hours at weekends?"),
            (
                ("Partnership inquiry", "Reseller program"),
                "We are a reseller and would like to know more about partnership options.",
            ),
            (
                ("Compatibility question", "Does the {device} work with {os}?"),
                "Is the {device} compatible with {os}?",
            ),
            (("Documentation", "Where are the docs?"), "Where can I find the documentation for {product}?"),
            (("Payment by invoice?", "Payment options"), "Do you offer payment by invoice for companies?"),
            (("Where is my data stored?", "Data location / GDPR"), "Is our data stored in the EU?"),
        ),
        "subject": ("Question", "Quick question", "Information request", "Inquiry"),
        "detail": (
            "We are a team of {users} people.",
            "We are currently on the free plan.",
            "I could not find this on your website.",
            "We are comparing a few providers.",
        ),
        "ask": (
            "Thanks in advance for the information.",
            "Looking forward to your answer.",
            "A short answer is fine.",
        ),
    },
}

_DE: _Templates = {
    "billing": {
        "issues": (
            (
                ("Falscher Betrag abgebucht",),
                "Mir wurden am {date} {amount} berechnet, obwohl mein {plan}-Tarif nur {amount2} kostet.",
            ),
            (("Frage zur Rechnung {invoice}",), "Auf der Rechnung {invoice} fehlt unsere USt-IdNr."),
            (
                ("Doppelte Abbuchung",),
                "Ich sehe zwei Abbuchungen über {amount} auf meiner Kreditkarte mit den Endziffern {last4}.",
            ),
        ),
        "subject": ("Rechnung", "Frage zur Abrechnung"),
        "detail": ("Unsere Bestellnummer lautet {po}.", "Ein Screenshot des Kontoauszugs ist angehängt."),
        "ask": ("Bitte korrigieren Sie die Rechnung.", "Können Sie mir die Abbuchung erklären?"),
    },
    "refund_request": {
        "issues": (
            (
                ("Rückgabe und Erstattung",),
                "Ich möchte das {device} zurückgeben und den Kaufpreis erstattet bekommen.",
            ),
            (
                ("Abbuchung nach Kündigung",),
                "Ich habe mein Abo am {date} gekündigt, aber trotzdem wurden {amount} abgebucht. "
                "Bitte erstatten Sie den Betrag.",
            ),
            (
                ("Erstattung noch nicht erhalten",),
                "Die Rücksendung zu Bestellung {order} ist seit {days} Tagen bei Ihnen, die Erstattung "
                "fehlt.",
            ),
        ),
        "subject": ("Rückerstattung", "Geld zurück bitte"),
        "detail": ("Ich habe mit PayPal bezahlt.", "Meine Bestellnummer ist {order}."),
        "ask": ("Bitte veranlassen Sie die Erstattung.", "Wie lange dauert die Rückerstattung?"),
    },
    "shipping": {
        "issues": (
            (
                ("Wo ist meine Bestellung {order}?", "Lieferung verspätet"),
                "Meine Bestellung {order} sollte am {date} ankommen, die Sendungsverfolgung steht seit "
                "{days} Tagen still.",
            ),
            (
                ("Paket nicht angekommen",),
                "Laut {carrier} wurde das Paket zugestellt, ich habe aber nichts erhalten.",
            ),
            (("Beschädigtes Paket",), "Der Karton kam beschädigt an und das {device} ist kaputt."),
        ),
        "subject": ("Lieferung", "Frage zum Versand"),
        "detail": ("Sendungsnummer: {tracking}.", "Die Lieferadresse ist {street}, {city}."),
        "ask": ("Bitte teilen Sie mir mit, wo mein Paket ist.", "Können Sie Ersatz schicken?"),
    },
    "technical_issue": {
        "issues": (
            (
                ("{product} stürzt ständig ab",),
                "Seit dem letzten Update stürzt {product} jedes Mal ab, wenn ich die Seite {feature} öffne.",
            ),
            (
                ("Fehler {error_code} beim Synchronisieren",),
                "Beim Synchronisieren erscheint der Fehler '{error_code}'.",
            ),
            (
                ("{device} startet nicht",),
                "Das {device} lässt sich nicht mehr einschalten, die LED blinkt nur orange.",
            ),
        ),
        "subject": ("Technisches Problem", "Funktioniert nicht"),
        "detail": ("Ich nutze {browser} unter {os}.", "Neu installieren hat nicht geholfen."),
        "ask": ("Können Sie sich das bitte ansehen?", "Gibt es einen Workaround?"),
    },
    "account_access": {
        "issues": (
            (
                ("Anmeldung nicht möglich",),
                "Ich kann mich nicht mehr anmelden, das Passwort wird als falsch angezeigt.",
            ),
            (
                ("Passwort-Reset kommt nicht an",),
                "Die E-Mail zum Zurücksetzen des Passworts kommt bei {email} nie an.",
            ),
            (
                ("Zwei-Faktor-Code",),
                "Ich habe ein neues Handy und keinen Zugriff mehr auf die Authenticator-App.",
            ),
        ),
        "subject": ("Konto gesperrt", "Login-Problem"),
        "detail": ("Mein Benutzername ist {username}.", "Den Spam-Ordner habe ich geprüft."),
        "ask": ("Bitte entsperren Sie mein Konto.", "Wie bekomme ich wieder Zugang?"),
    },
    "security": {
        "issues": (
            (
                ("Verdächtige Anmeldung",),
                "Ich habe eine Warnung über eine Anmeldung aus {city} bekommen, das war nicht ich.",
            ),
            (
                ("Konto gehackt?",),
                "Jemand hat mein Passwort und meine E-Mail-Adresse ohne meine Zustimmung geändert.",
            ),
            (
                ("Phishing-Mail in Ihrem Namen",),
                "Ich habe eine E-Mail erhalten, die angeblich von Ihnen ist und nach meinen Kartendaten "
                "fragt.",
            ),
        ),
        "subject": ("Sicherheitsproblem", "Sicherheitsvorfall"),
        "detail": ("Das war am {date} gegen {time} Uhr.", "Mein Passwort habe ich bereits geändert."),
        "ask": ("Bitte sperren Sie das Konto und prüfen Sie den Vorfall.", "Welche Daten wurden abgerufen?"),
    },
    "feature_request": {
        "issues": (
            (("Funktionswunsch: Dunkelmodus",), "Es wäre toll, wenn {product} einen Dunkelmodus hätte."),
            (("Export nach Excel",), "Wir würden uns einen Export nach Excel wünschen."),
            (("Outlook-Integration?",), "Ist geplant, eine Outlook-Kalenderintegration anzubieten?"),
        ),
        "subject": ("Verbesserungsvorschlag", "Idee für {product}"),
        "detail": ("Wir sind {users} Nutzer im Team.", "Andere Anbieter haben das bereits."),
        "ask": ("Vielleicht können Sie das in die Planung aufnehmen.", "Ist so etwas geplant?"),
    },
    "general_inquiry": {
        "issues": (
            (
                ("Frage zu den Tarifen",),
                "Was ist der Unterschied zwischen dem {plan}- und dem {plan2}-Tarif?",
            ),
            (
                ("Liefern Sie nach {country}?",),
                "Liefern Sie auch nach {country} und wie lange dauert der Versand?",
            ),
            (("Datenspeicherung",), "Werden unsere Daten in der EU gespeichert?"),
        ),
        "subject": ("Allgemeine Frage", "Anfrage"),
        "detail": (
            "Auf Ihrer Webseite habe ich dazu nichts gefunden.",
            "Wir vergleichen gerade mehrere Anbieter.",
        ),
        "ask": ("Vielen Dank im Voraus.", "Ich freue mich auf Ihre Antwort."),
    },
}

_URGENT = {
    "en": (
        "This is urgent.",
        "URGENT - please help asap, our whole team is blocked.",
        "We have a client demo tomorrow morning, please hurry.",
        "This is affecting production!",
        "Our business is basically down right now.",
        "I need this fixed today.",
        "This is the third time I am writing about this, please escalate.",
    ),
    "de": (
        "Das ist dringend!",
        "Bitte schnell helfen, wir können nicht arbeiten.",
        "Bitte heute noch lösen.",
    ),
}
_GREETING = {
    "en": (
        "Hi,",
        "Hello,",
        "Dear support team,",
        "Hi {agent},",
        "Good morning,",
        "Hello support,",
        "Hi there,",
    ),
    "de": ("Hallo,", "Sehr geehrte Damen und Herren,", "Guten Tag,", "Hallo {agent},"),
}
_CLOSING = {
    "en": (
        "Thanks,",
        "Best regards,",
        "Kind regards,",
        "Cheers,",
        "Thank you,",
        "Thanks in advance,",
        "Regards,",
    ),
    "de": ("Viele Grüße", "Mit freundlichen Grüßen", "Danke und Gruß", "Beste Grüße"),
}
_SECOND_ISSUE_LEAD = {
    "en": ("Also, ", "By the way, ", "One more thing: ", "Separately, "),
    "de": ("Außerdem: ",),
}


def generate_demo_tickets(n: int = 3000, seed: int = 7) -> pd.DataFrame:
    """``n`` tickets over calendar year 2025, sorted by creation time; the same seed gives the same frame."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    rng = np.random.default_rng(seed)
    categories = list(CATEGORY_WEIGHTS)
    category_p = np.array(list(CATEGORY_WEIGHTS.values()))
    day_p = {c: _day_weights(c) for c in categories}

    rows = []
    for _ in range(n):
        category = categories[int(rng.choice(len(categories), p=category_p))]
        lang = "de" if rng.random() < GERMAN_SHARE else "en"
        tier = TIERS[int(rng.choice(len(TIERS), p=_TIER_P))]
        channel = CHANNELS[int(rng.choice(len(CHANNELS), p=_CHANNEL_P_BY_TIER[tier]))]
        created = _created_at(rng, day_p[category], channel)
        urgent = rng.random() < _URGENT_P[category] * (1.4 if tier == "enterprise" else 1.0)
        subject, body = _compose(rng, category, lang, channel, created, urgent=bool(urgent))
        priority = _priority(rng, category, tier, channel, urgent=bool(urgent))
        label = _noisy_label(rng, category, categories)
        rows.append((subject, body, label, priority, created, channel, tier))

    frame = pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "ticket_id"])
    frame = frame.sort_values("created_at", kind="stable").reset_index(drop=True)
    first_id = int(rng.integers(10_000, 90_000))
    frame.insert(0, "ticket_id", [f"TCK-{first_id + i:06d}" for i in range(len(frame))])
    frame["created_at"] = [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in frame["created_at"]]
    return frame


def write_demo_csv(path: Path, n: int = 3000, seed: int = 7) -> Path:
    """Write the demo tickets as CSV (parent folders created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    generate_demo_tickets(n=n, seed=seed).to_csv(path, index=False)
    return path


def _day_weights(category: str) -> np.ndarray:
    """Weekdays are busier; shipping peaks before Christmas, billing on the 1st-3rd of a month (renewals)."""
    days = [YEAR_START + timedelta(days=d) for d in range(DAYS)]
    weights = np.array([_WEEKDAY_FACTOR[d.weekday()] for d in days])
    if category == "shipping":
        weights *= np.array(
            [1.9 if d.month == 12 and d.day < 24 else 1.5 if d.month == 11 else 1.0 for d in days]
        )
    if category in ("billing", "refund_request"):
        weights *= np.array([1.8 if d.day <= 3 else 1.0 for d in days])
    return weights / weights.sum()


def _created_at(rng: np.random.Generator, day_p: np.ndarray, channel: str) -> datetime:
    day = YEAR_START + timedelta(days=int(rng.choice(DAYS, p=day_p)))
    hours = _HOURS_API if channel == "api" else _HOURS_WEEKEND if day.weekday() >= 5 else _HOURS_WEEKDAY
    hour = int(rng.choice(24, p=hours / hours.sum()))
    return day + timedelta(hours=hour, seconds=int(rng.integers(0, 3600)))


def _compose(
    rng: np.random.Generator, category: str, lang: str, channel: str, created: datetime, *, urgent: bool
) -> tuple[str, str]:
    """Subject and body in the style of the channel the ticket came through."""
    slots = _Slots(rng, lang, created)
    parts = (_DE if lang == "de" else _EN)[category]

    def one(options: Sequence[str]) -> str:
        return options[int(rng.integers(len(options)))].format_map(slots)

    issue_subjects, problem = parts["issues"][int(rng.integers(len(parts["issues"])))]
    subject = one(parts["subject"] if rng.random() < GENERIC_SUBJECT_SHARE else issue_subjects)
    sentences = [problem.format_map(slots)]
    for detail in rng.permutation(len(parts["detail"]))[: int(rng.choice([0, 1, 1, 2, 3]))]:
        sentences.append(parts["detail"][int(detail)].format_map(slots))
    if rng.random() < SECOND_ISSUE_SHARE:
        other = (_DE if lang == "de" else _EN)[NEIGHBOURS[category][int(rng.integers(2))]]
        second = other["issues"][int(rng.integers(len(other["issues"])))][1].format_map(slots)
        if lang == "en" and not second.startswith(("I ", "I'")):
            second = second[0].lower() + second[1:]
        sentences.append(one(_SECOND_ISSUE_LEAD[lang]) + second)
    urgency = one(_URGENT[lang]) if urgent else ""
    if urgent:
        sentences.append(urgency)
        if rng.random() < 0.3:
            subject = f"URGENT: {subject}" if lang == "en" else f"DRINGEND: {subject}"
    sentences.append(one(parts["ask"]))
    text = " ".join(sentences)
    if rng.random() < TYPO_SHARE:
        text = _typos(rng, text)

    if channel == "chat":  # short and informal; the subject is the chat widget's, not the customer's
        opener = one(("hi ", "hello ", "hey, ", "", "")) if lang == "en" else one(("hallo ", ""))
        body = opener + " ".join(filter(None, (sentences[0], urgency)))
        if rng.random() < 0.4:
            body = body.lower()
        return f"Chat with {slots['first']}", body
    if channel == "phone":  # written by the agent who took the call
        note = (
            f'Customer {slots["name"]} called. Reported: "{text}"\nAdvised that we will follow up by email.'
            if lang == "en"
            else f'Anruf von {slots["name"]}: "{text}"\nRückmeldung per E-Mail zugesagt.'
        )
        return f"Phone: {subject}", note
    if channel == "api":  # created by a customer's integration or a partner portal
        return f"[API] {subject}", f"Ticket submitted via partner portal.\n\n{text}"
    if channel == "web":  # contact form: customers rarely bother with greetings
        return subject, text if rng.random() < 0.6 else f"{one(_GREETING[lang])}\n{text}"
    return subject, f"{one(_GREETING[lang])}\n\n{text}\n\n{one(_CLOSING[lang])}\n{slots['name']}"


def _typos(rng: np.random.Generator, text: str) -> str:
    """One to three slips of the keyboard in longer words: swapped, dropped or doubled letters."""
    words = text.split(" ")
    candidates = [i for i, w in enumerate(words) if len(w) >= 5 and w.isalpha()]
    for i in rng.permutation(candidates)[: int(rng.integers(1, 4))] if candidates else []:
        word = words[int(i)]
        k = int(rng.integers(1, len(word) - 2))
        kind = int(rng.integers(3))
        if kind == 0:
            word = word[:k] + word[k + 1] + word[k] + word[k + 2 :]
        elif kind == 1:
            word = word[:k] + word[k + 1 :]
        else:
            word = word[:k] + word[k] + word[k:]
        words[int(i)] = word
    return " ".join(words)


def _priority(rng: np.random.Generator, category: str, tier: str, channel: str, *, urgent: bool) -> str:
    score = (
        _PRIORITY_BASE[category]
        + 1.3 * urgent
        + _PRIORITY_TIER[tier]
        + _PRIORITY_CHANNEL[channel]
        + rng.normal(0.0, 0.5)
    )
    return PRIORITIES[int(np.searchsorted(_PRIORITY_CUTS, score))]


def _noisy_label(rng: np.random.Generator, category: str, categories: list[str]) -> str:
    """Mostly the true category; sometimes misfiled, usually into a neighbouring queue."""
    if rng.random() >= LABEL_NOISE:
        return category
    if rng.random() < 0.7:
        return NEIGHBOURS[category][int(rng.integers(2))]
    others = [c for c in categories if c != category]
    return others[int(rng.integers(len(others)))]
