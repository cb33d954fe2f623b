# Kenward-Roger as pbkrtest (vcovAdj, KRmodcomp) and lmerTest's summary(ddf = "Kenward-Roger"):
#   Rscript tests/reference/R/kenward_roger_cases.R tests/reference/local
suppressPackageStartupMessages({library(lmerTest); library(pbkrtest); library(jsonlite)})
out <- commandArgs(trailingOnly = TRUE)[1]
if (is.na(out)) out <- "."
d <- sleepstudy[-c(3, 17, 40, 41, 42, 90, 131, 170), ]
m <- lmer(Reaction ~ Days + I(Days^2) + (1 | Subject) + (0 + Days | Subject), d)
co <- coef(summary(m, ddf = "Kenward-Roger"))
kr2 <- KRmodcomp(m, rbind(c(0, 1, 0), c(0, 0, 1)))$test
res <- list(
  formula = "Reaction ~ Days + I(Days^2) + (1 | Subject) + (0 + Days | Subject)",
  drop = c(3, 17, 40, 41, 42, 90, 131, 170),
  vcov_adjusted = unname(as.matrix(vcovAdj(m))),                    # vcovAdj(m)
  terms = rownames(co), std_error = unname(co[, "Std. Error"]), df = unname(co[, "df"]),
  t = unname(co[, "t value"]), p = unname(co[, "Pr(>|t|)"]),
  two_df = list(F = kr2["Ftest", "stat"], ndf = kr2["Ftest", "ndf"], ddf = kr2["Ftest", "ddf"],
                scaling = kr2["Ftest", "F.scaling"], p = kr2["Ftest", "p.value"]),
  software = list(R = R.version.string, pbkrtest = as.character(packageVersion("pbkrtest")))
)
writeLines(toJSON(res, digits = 15, auto_unbox = TRUE, pretty = TRUE, matrix = "rowmajor"),
           file.path(out, "kenward_roger.json"))
