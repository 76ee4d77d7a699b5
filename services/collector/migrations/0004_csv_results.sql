-- AMC delivers results as CSV only (its API has no output format; PARQUET was never produced).
UPDATE collections SET run = jsonb_set(run, '{output_format}', '"CSV"')
 WHERE run ->> 'output_format' IS DISTINCT FROM 'CSV' AND run ? 'output_format';
