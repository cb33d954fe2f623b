# Laplace GLMM fits over structures with several terms and random slopes in later
# groupings, as lme4's glmer (nAGQ = 1):
#   Rscript tests/reference/R/glmm_structure_sweep_cases.R tests/reference/local
# Data: grouseticks (cHEIGHT centred) and the first 3000 rows of VerbAgg. lme4 1.1-31.
suppressPackageStartupMessages({library(lme4); library(jsonlite)})
out <- commandArgs(trailingOnly = TRUE)[1]
if (is.na(out)) out <- "."
grouseticks$cHEIGHT <- grouseticks$HEIGHT - mean(grouseticks$HEIGHT)
v <- VerbAgg[1:3000, ]
cases <- list(
  p1 = list(f = TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | LOCATION), d = "grouseticks", fam = poisson()),
  p2 = list(f = TICKS ~ cHEIGHT + (1 | LOCATION) + (cHEIGHT | YEAR), d = "grouseticks", fam = poisson()),
  b1 = list(f = r2 ~ Anger + Gender + (1 | id) + (Gender | item), d = "VerbAgg", fam = binomial()),
  b2 = list(f = r2 ~ Anger + (1 | id) + (1 | item), d = "VerbAgg", fam = binomial())
)
res <- list()
for (nm in names(cases)) {
  cs <- cases[[nm]]
  dd <- if (cs$d == "grouseticks") grouseticks else v
  m <- suppressMessages(suppressWarnings(glmer(cs$f, dd, family = cs$fam)))
  res[[nm]] <- list(formula = paste(deparse(cs$f), collapse=""), data = cs$d, family = cs$fam$family,
                    logLik = as.numeric(logLik(m)), fixef = unname(fixef(m)), theta = unname(getME(m, "theta")))
}
res$software <- list(R = R.version.string, lme4 = as.character(packageVersion("lme4")))
writeLines(toJSON(res, digits = 15, auto_unbox = TRUE, pretty = TRUE), file.path(out, "glmm_structure_sweep.json"))
