-- A merge repoints the customers merged into the loser earlier
-- (merged_into = loser): without an index that read every customer, a
-- sequential scan per merge that grows with the store. Only merged
-- customers have a merged_into, so the index holds only them.
CREATE INDEX customers_merged_into ON customers (merged_into) WHERE merged_into IS NOT NULL;
