"""twin.traffic: the workload of mailtwin, a week of ECE campus mail.

Modules, in the order data flows through them:

- ``profile``: 168-hour week profiles per traffic class (built-in
  "campus-weekday", "outbound-campus", "spam-flat", "flat", or 168 weights)
  and the non-homogeneous Poisson arrivals over them;
- ``population``: the department's users (login names, passwords, addresses,
  workstation IPs, greytraps, mailbox popularity);
- ``retry``: when a sending MTA retries a tempfailed message (Postfix 2.4+,
  Postfix before 2.4, sendmail, retrying spamware);
- ``workload``: ``TrafficSettings``, ``MessageSpec`` and ``generate``, the
  lazy, hour-by-hour stream of legit, spam and outbound message specs;
- ``message``: ``render``, the RFC 822 bytes of a spec for the real stages;
- ``infect``: a zipped EICAR attachment for viral mail;
- ``users``, ``client``, ``mailboxes``: users reading mail (session arrivals,
  scripted IMAP/POP3 clients driving the real servers, initial mailboxes).

Everything here imports only the standard library, numpy and this package;
randomness comes only from the Generators the caller passes. Nothing is
re-exported here: import from the modules.
"""
