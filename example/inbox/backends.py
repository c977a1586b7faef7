"""An email backend that delivers into the shop's own mailbox (the Message table).

The demo must run with no other service, yet show the emails its signals
send: `make demo` uses this backend (settings.MAILERS) and /mail/ lists what
arrived. Set SHOP_SMTP_PORT to send to a real SMTP server instead.
"""

from django.core.mail.backends.base import BaseEmailBackend

from .models import Message


class InboxBackend(BaseEmailBackend):
    def send_messages(self, email_messages):
        sent = 0
        for message in email_messages:
            recipients = message.recipients()
            if not recipients:
                continue
            message_id = message.extra_headers.get("Message-ID", "")
            Message.objects.bulk_create(
                [
                    Message(
                        from_email=message.from_email,
                        to=recipient,
                        subject=message.subject,
                        body=message.body,
                        message_id=message_id,
                    )
                    for recipient in recipients
                ],
                ignore_conflicts=True,  # the same Message-ID again: a duplicate delivery
            )
            sent += 1
        return sent
