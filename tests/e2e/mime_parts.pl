#!/usr/bin/perl
# A second, independent MIME parser for the notices (Perl's MIME-tools, Debian's
# libmime-tools-perl): reads one message on stdin and prints its structure as JSON, each part
# with its type, parameters, transfer encoding and decoded body (base64, as bytes). Nested
# message/* parts are kept as bodies, so that a delivery-status part is seen as it was sent.
use strict;
use warnings;
use JSON::PP;
use MIME::Base64;
use MIME::Parser;

my $parser = MIME::Parser->new;
$parser->output_to_core(1);
$parser->extract_nested_messages(0);
$parser->decode_headers(0);
binmode STDIN;
my $top = $parser->parse(\*STDIN);

sub describe {
  my ($entity) = @_;
  my $head = $entity->head;
  my %out = (
    type     => $entity->mime_type,
    encoding => $head->mime_encoding,
    charset  => $head->mime_attr('content-type.charset') // '',
    report_type => $head->mime_attr('content-type.report-type') // '',
  );
  if ($entity->parts) {
    $out{parts} = [map { describe($_) } $entity->parts];
  } elsif ($entity->bodyhandle) {
    $out{body} = encode_base64($entity->bodyhandle->as_string, '');
  }
  return \%out;
}

print JSON::PP->new->canonical->encode(describe($top)), "\n";
