"""A small labelled set of enquiry e-mails to a small UK accountancy and retail firm.

Written for the local provider's tests (issue 4): ten each of complaints, routine questions,
invoices and spam. ``LABELS`` maps each label to the description the classifier is given.
"""

from __future__ import annotations

LABELS: dict[str, str] = {
    "complaint": (
        "an unhappy customer complaining about poor service, a mistake, a delay, a faulty or "
        "damaged product, and asking for an apology, a refund or a fix"
    ),
    "routine_question": (
        "a polite everyday question from a customer or client asking for information, such as "
        "opening hours, deadlines, documents needed, appointments or how something works"
    ),
    "invoice": (
        "an invoice, bill, payment request, remittance advice or statement of account with "
        "amounts due, invoice numbers and payment terms"
    ),
    "spam": (
        "unsolicited spam or a scam: marketing, prizes, lottery wins, crypto, phishing links, "
        "cheap offers or requests for passwords and bank details"
    ),
}

ENQUIRIES: list[tuple[str, str]] = [
    # complaints
    (
        "I am extremely disappointed. My self-assessment return was filed late by your office "
        "and I have now been fined £100 by HMRC. I expect you to pay the penalty.",
        "complaint",
    ),
    (
        "The kettle I bought from your Leeds shop last week stopped working after two days. "
        "Nobody has answered my calls. This is unacceptable and I want a full refund.",
        "complaint",
    ),
    (
        "This is the third time I have had to chase you for my year-end accounts. The service "
        "has been slow and rude, and I am considering moving to another accountant.",
        "complaint",
    ),
    (
        "My order arrived with the box crushed and two of the mugs broken. I am very unhappy "
        "with the packaging and would like replacements sent at once.",
        "complaint",
    ),
    (
        "You charged me twice for the same bookkeeping work in March. I noticed it on my bank "
        "statement and I am frankly annoyed nobody caught it. Please fix this.",
        "complaint",
    ),
    (
        "The assistant in your shop was dismissive and refused to exchange a jumper I still had "
        "the receipt for. I would like to make a formal complaint about how I was treated.",
        "complaint",
    ),
    (
        "Your payroll run put the wrong tax code on my staff's payslips and now three employees "
        "have been overtaxed. This mistake has caused a lot of upset. Please sort it out.",
        "complaint",
    ),
    (
        "I waited in for a delivery all day on Saturday and it never came. No text, no email, "
        "nothing. Very poor service, I want my delivery fee back.",
        "complaint",
    ),
    (
        "I was promised a call back from a partner about my VAT problem a fortnight ago and "
        "still nothing. I am fed up with being ignored.",
        "complaint",
    ),
    (
        "The garden chairs I ordered are a completely different colour from the website photo "
        "and one leg is wobbly. Really disappointed with the quality.",
        "complaint",
    ),
    # routine questions
    (
        "Hello, could you tell me what time your Harrogate shop opens on bank holiday Monday? "
        "Thanks.",
        "routine_question",
    ),
    (
        "Hi, what documents do I need to bring to our meeting about my tax return next week? "
        "Should I bring my P60?",
        "routine_question",
    ),
    (
        "Good morning, when is the deadline for filing my company's confirmation statement this "
        "year? Many thanks, Priya",
        "routine_question",
    ),
    (
        "Do you offer click and collect from the Bristol store, and how long does it usually "
        "take before an order is ready?",
        "routine_question",
    ),
    (
        "Could I book an appointment with Sarah on Thursday afternoon to go over my payroll "
        "set-up? Any time after 2pm is fine.",
        "routine_question",
    ),
    (
        "Hi there, can I claim my home office costs as a sole trader, and if so how do I work "
        "out the amount?",
        "routine_question",
    ),
    (
        "Is it possible to change the delivery address on an order I placed this morning? "
        "Order number 55812.",
        "routine_question",
    ),
    (
        "Quick question: do you sell gift cards, and can they be used online as well as in store?",
        "routine_question",
    ),
    (
        "We are thinking of registering for VAT. Could you explain roughly how the flat rate "
        "scheme works and whether it would suit a small café?",
        "routine_question",
    ),
    (
        "Hello, what is your returns policy for items bought in the January sale? Just checking "
        "before I buy.",
        "routine_question",
    ),
    # invoices
    (
        "Please find attached invoice INV-20431 for £1,250.00 plus VAT for the supply of "
        "shelving units. Payment is due within 30 days. Bank: Lloyds, sort code 30-94-57.",
        "invoice",
    ),
    (
        "Invoice 7781 from Northern Print Ltd: 500 leaflets, £185.00, VAT £37.00, total £222.00. "
        "Terms: 14 days net.",
        "invoice",
    ),
    (
        "Statement of account for March: invoices 3310, 3318 and 3342 remain outstanding, "
        "balance due £2,940.60. Kindly arrange payment by the end of the month.",
        "invoice",
    ),
    (
        "Remittance advice: we have today paid £860.00 by BACS against your invoice 1042 dated "
        "2 May. Reference ACME-1042.",
        "invoice",
    ),
    (
        "Our invoice number 2024-118 for the quarterly cleaning contract, £540.00 including "
        "VAT, is now overdue. Please settle the amount due at your earliest convenience.",
        "invoice",
    ),
    (
        "Attached is your monthly bill for the shop's card terminal rental: £29.99 plus VAT, to "
        "be collected by direct debit on the 5th.",
        "invoice",
    ),
    (
        "Please find our invoice for stock delivered on 12 June: 40 cases of candles at £18.50 "
        "each, total £740.00 plus VAT. Payment terms 30 days end of month.",
        "invoice",
    ),
    (
        "Invoice for professional fees: preparation of 2023/24 accounts and corporation tax "
        "return, £1,800.00 plus VAT £360.00. Amount payable: £2,160.00.",
        "invoice",
    ),
    (
        "Reminder: invoice INV-0093 for £312.40 was due on 1 April and remains unpaid. Please "
        "pay to account 41236789, sort code 20-45-77, quoting the invoice number.",
        "invoice",
    ),
    (
        "Credit note CN-204 for £45.00 against invoice 9921 for the returned display stand. "
        "The revised balance owed is £455.00.",
        "invoice",
    ),
    # spam
    (
        "CONGRATULATIONS!!! You have been selected to win a brand new iPhone. Click here to "
        "claim your prize before midnight!",
        "spam",
    ),
    (
        "Dear Sir, I am a banker with a dormant account of $12 million. I need your help to "
        "transfer the funds and you will receive 30 percent.",
        "spam",
    ),
    (
        "Your mailbox is almost full. Verify your password now at the link below or your "
        "account will be suspended within 24 hours.",
        "spam",
    ),
    (
        "Make £5,000 a week from home trading crypto with our secret AI bot! Limited places, "
        "sign up today.",
        "spam",
    ),
    (
        "Cheap Ray-Ban sunglasses 90% off, free shipping worldwide, buy now!!!",
        "spam",
    ),
    (
        "HMRC tax refund notification: you are owed £472.18. To receive your refund, enter your "
        "card details at our secure portal.",
        "spam",
    ),
    (
        "Boost your website to page one of Google guaranteed! Our SEO experts can triple your "
        "traffic for just $99. Reply YES to start.",
        "spam",
    ),
    (
        "You have won the UK National Lottery online draw. Send your full name, address and "
        "bank details to claim your £850,000 winnings.",
        "spam",
    ),
    (
        "Hot singles in your area are waiting to meet you. Click now, it is free!",
        "spam",
    ),
    (
        "Your parcel could not be delivered. Pay a £1.99 redelivery fee at the link below to "
        "reschedule.",
        "spam",
    ),
]
